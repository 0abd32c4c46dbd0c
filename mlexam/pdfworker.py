"""Worker processes that render PDFs while the main process does other work.

`mlexam generate` starts the worker before it imports sympy, so the worker loads
WeasyPrint while the main process builds the paper. Once WeasyPrint is loaded, the
worker forks one copy of itself per extra document, which costs no second import.
The main process then hands over the HTML of the key and of the question paper, and
on two cores the two documents are laid out at the same time.

Where Python's multiprocessing offers no "fork" start method (it is POSIX only), or
the worker fails to start, `submit` renders in the calling process instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

from generator.errors import MlexamError

log = logging.getLogger(__name__)


class PdfWorker:
    """Renderers for up to `documents` PDFs, each in its own process, one document each."""

    def __init__(self, documents: int = 1) -> None:
        self._process = None
        self._connections: list = []
        self._pending: list[tuple[object, Path]] = []
        if "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        pipes = [context.Pipe() for _ in range(documents)]
        process = context.Process(target=_serve, args=([child for _, child in pipes], [own for own, _ in pipes]),
                                  name="mlexam-pdf", daemon=True)
        try:
            process.start()
        except OSError as error:
            log.debug("could not start the PDF worker, so PDFs render in this process: %s", error)
            for own, child in pipes:
                own.close()
                child.close()
            return
        for _, child in pipes:
            child.close()
        self._process = process
        self._connections = [own for own, _ in pipes]

    def submit(self, html: str, path: Path) -> None:
        """Render html to a PDF at path: in a free renderer if there is one, else in this process."""
        if self._process is None or len(self._pending) == len(self._connections):
            from mlexam.fileio import write_bytes_atomic
            from mlexam.render import html_to_pdf

            write_bytes_atomic(path, html_to_pdf(html))
            return
        connection = self._connections[len(self._pending)]
        connection.send((html, str(path)))
        self._pending.append((connection, Path(path)))

    def wait(self) -> None:
        """Wait for every submitted PDF; raise one error that names each PDF a renderer could not write."""
        pending, self._pending = self._pending, []
        errors = []
        for connection, path in pending:
            try:
                error = connection.recv()
            except EOFError:
                error = "the PDF process stopped before writing it"
            if error is not None:
                errors.append(f"{path}: could not write the PDF: {error}")
        if errors:
            raise MlexamError("; ".join(errors))

    def close(self) -> None:
        """Stop the renderers that got no document, then wait for the worker to exit."""
        if self._process is None:
            return
        for connection in self._connections:
            try:
                connection.send(None)
            except OSError as error:
                log.debug("the PDF renderer had already exited: %s", error)
            connection.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._process = None

    def __enter__(self) -> PdfWorker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _serve(connections: list, parent_ends: list) -> None:
    """Load WeasyPrint, fork a renderer for every connection after the first, and serve the first.

    The fork that started this process copied the parent's ends of the pipes too. They
    are closed first, so that each pipe reaches end-of-file, and its renderer exits,
    when the parent dies.
    """
    for end in parent_ends:
        end.close()
    try:
        from mlexam.render import warm_up

        warm_up()
    except Exception as error:  # each renderer reports it to the parent, which names the file
        for connection in connections:
            _report_startup_error(connection, error)
        return
    except KeyboardInterrupt:
        return

    children = []
    for extra in connections[1:]:
        pid = os.fork()
        if pid == 0:
            for other in connections:
                if other is not extra:
                    other.close()
            _render_one(extra)
            os._exit(0)
        children.append(pid)
        extra.close()
    _render_one(connections[0])
    for pid in children:
        os.waitpid(pid, 0)


def _render_one(connection) -> None:
    """Receive one (html, path) job, write the PDF, and send back None or the error's text."""
    try:
        from mlexam.fileio import write_bytes_atomic
        from mlexam.render import html_to_pdf

        job = connection.recv()
        if job is None:
            return
        html, path = job
        pdf = html_to_pdf(html)
        # Input waiting here means the parent died (end-of-file) or gave up on the run, because
        # a running parent sends nothing until it has the reply. The PDF is then not wanted.
        if connection.poll():
            return
        write_bytes_atomic(Path(path), pdf)
        connection.send(None)
    except (EOFError, KeyboardInterrupt):
        log.debug("PDF renderer %d stopped: the parent ended the run", os.getpid())
    except Exception as error:  # reported by the parent, which names the file
        try:
            connection.send(f"{type(error).__name__}: {error}")
        except OSError:
            log.debug("PDF renderer %d could not report %r: the parent has exited", os.getpid(), error)
    finally:
        connection.close()


def _report_startup_error(connection, error: Exception) -> None:
    """Send the error that stopped the worker as the reply to the job on connection, if a job comes."""
    try:
        if connection.recv() is not None:
            connection.send(f"{type(error).__name__}: {error}")
    except (EOFError, OSError):
        log.debug("PDF worker %d could not report %r: the parent has exited", os.getpid(), error)
    finally:
        connection.close()
