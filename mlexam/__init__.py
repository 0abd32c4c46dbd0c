"""mlexam: exam questions on byte-pair encoding and backpropagation, with exact keys and a marker."""

__version__ = "0.1.0"
