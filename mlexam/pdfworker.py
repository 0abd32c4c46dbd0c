"""A second process that renders one PDF while the main process does other work.

`mlexam generate` starts the worker before it imports sympy, so the worker loads
WeasyPrint while the main process builds the paper. The main process then hands
over the key's HTML, renders the question paper itself, and waits. On two cores
the two documents are laid out at the same time.

Where Python's multiprocessing offers no "fork" start method (on Windows), or the
worker fails to start, `submit` renders in the calling process instead.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from generator.errors import MlexamError


class PdfWorker:
    def __init__(self) -> None:
        self._process = None
        self._connection = None
        self._pending: Path | None = None
        if "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_serve, args=(child_end, parent_end), name="mlexam-pdf", daemon=True)
        try:
            process.start()
        except OSError:
            return
        child_end.close()
        self._process, self._connection = process, parent_end

    def submit(self, html: str, path: Path) -> None:
        """Render html to a PDF at path, in the worker when there is one."""
        if self._process is None:
            from mlexam.fileio import write_bytes_atomic
            from mlexam.render import html_to_pdf

            write_bytes_atomic(path, html_to_pdf(html))
            return
        self._connection.send((html, str(path)))
        self._pending = Path(path)

    def wait(self) -> None:
        """Wait for the submitted PDF; raise if the worker could not write it."""
        if self._process is None or self._pending is None:
            return
        path, self._pending = self._pending, None
        try:
            error = self._connection.recv()
        except EOFError:
            error = f"the PDF process stopped with exit code {self._process.exitcode}"
        if error is not None:
            raise MlexamError(f"{path}: could not write the PDF: {error}")

    def close(self) -> None:
        if self._process is None:
            return
        try:
            self._connection.send(None)
        except OSError:
            pass
        self._connection.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._process = None

    def __enter__(self) -> PdfWorker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _serve(connection, parent_end) -> None:
    """Load WeasyPrint, then render the one document the parent sends, if any.

    The fork copied the parent's end of the pipe too. It is closed first, so that the
    pipe reaches end-of-file, and this process exits, when the parent dies.
    """
    parent_end.close()
    try:
        from mlexam.fileio import write_bytes_atomic
        from mlexam.render import html_to_pdf, warm_up

        warm_up()
        job = connection.recv()
        if job is None:
            return
        html, path = job
        write_bytes_atomic(Path(path), html_to_pdf(html))
        connection.send(None)
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception as error:  # reported by the parent, which names the file
        try:
            connection.send(f"{type(error).__name__}: {error}")
        except OSError:
            pass
    finally:
        connection.close()
