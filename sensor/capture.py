"""Capture sources behind one small interface: an iterator of ``(buf, meta)`` batches as
pcapy-ng's ``next_batch`` returns them, plus the link type.

Files: pcap and pcapng (libpcap through pcapy-ng), gzip-compressed ones too (decompressed to
a private temporary file first, since libpcap reads only plain files).  A stream -- a pipe,
``/dev/stdin``, ``-`` (standard input), ``<(zcat x.pcap.gz)`` -- is read once as it comes,
by libpcap alone: pcap or pcapng, not gzip.  A file that cannot be
opened or is corrupt raises :class:`CaptureError` with a one-line message — after the batches
that could be read were delivered.
"""
from __future__ import annotations

import logging
import os
import queue
import stat
import struct
import tempfile
import threading
import zlib

import pcapy

from proto.text import one_line

__all__ = ["CaptureError", "FileCapture", "BATCH", "is_stream", "unsupported_linktype"]

log = logging.getLogger(__name__)

BATCH = 1024
#: batches read ahead by a reader thread (pcapy-ng's next_batch releases the GIL while
#: libpcap reads): reading overlaps parsing on a second core; bounded, ~0.5 MB a batch
PREFETCH = 4
_META = struct.Struct("=IIII")
_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")


class CaptureError(Exception):
    """A capture that cannot be read (or not to its end).  ``str()`` is one line."""


def is_stream(path: str) -> bool:
    """Whether ``path`` is read as it comes (``-``, a pipe, a terminal, a socket): not a
    file that can be mapped or opened twice.  (One that does not exist is not: its error
    comes when it is opened.)"""
    if path == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISBLK(mode))


class FileCapture:
    """Batches from one capture file.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str, batch: int = BATCH, prefetch: int = PREFETCH) -> None:
        self.path = path
        self.batch = batch
        self.prefetch = prefetch
        self._tmp: str | None = None
        self._late_error: str | None = None
        self.packets = 0
        self.bytes_read = 0                # captured bytes + per-record headers: progress
        #: read as it comes (a pipe, standard input): never opened again, nor looked at
        #: before libpcap (its first bytes would be gone)
        self.stream = is_stream(path)
        src = path
        if self.stream:
            self.size = 0
        else:
            src = self._plain(path)
        try:
            self._reader = pcapy.open_offline(src)
            self.linktype = self._reader.datalink()
        except Exception as exc:
            self.close()
            raise CaptureError("%s: cannot read capture: %s%s" % (
                path, one_line(exc), " (a stream is read as pcap or pcapng, not gzip)"
                if self.stream else "")) from None

    def _plain(self, path: str) -> str:
        """The plain pcap / pcapng file to read for ``path`` (a gzip one decompressed)."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
            self.size = os.path.getsize(path)
        except OSError as exc:
            raise CaptureError("%s: %s" % (path, exc.strerror or exc)) from None
        src = path
        if head[:2] == b"\x1f\x8b":
            src = self._gunzip(path)
            with open(src, "rb") as fh:
                head = fh.read(4)
            self.size = os.path.getsize(src)
        if head not in _PCAP_MAGICS:
            self.close()
            raise CaptureError("%s: not a pcap or pcapng file" % path)
        return src

    def _gunzip(self, path: str) -> str:
        fd, tmp = tempfile.mkstemp(prefix="tlsdiag-", suffix=".pcap")
        self._tmp = tmp
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                z = zlib.decompressobj(wbits=31)           # gzip framing
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(z.decompress(chunk))
                    while z.eof and z.unused_data:         # concatenated members
                        rest = z.unused_data
                        z = zlib.decompressobj(wbits=31)
                        out.write(z.decompress(rest))
                out.write(z.flush())
                if not z.eof:
                    # truncated: read what was decompressed, report the rest at the end
                    self._late_error = "%s: truncated gzip data" % path
        except (OSError, zlib.error) as exc:
            self.close()
            raise CaptureError("%s: corrupt gzip data: %s" % (path, one_line(exc))) from None
        return tmp

    def __iter__(self):
        batches = self._read_ahead() if self.prefetch > 0 else self._read()
        for item in batches:
            if isinstance(item, Exception):
                # the batch that hit the bad record is lost: re-read it packet by packet
                yield from self._salvage(item)
                return
            buf, meta = item
            n = len(meta) >> 4
            self.packets += n
            self.bytes_read += len(buf) + 16 * n
            yield buf, meta
        if self._late_error is not None:
            raise CaptureError(self._late_error)

    def _read(self):
        """``(buf, meta)`` batches, then the read error (as a value) if one ended them."""
        reader = self._reader
        while True:
            try:
                buf, meta = reader.next_batch(self.batch)
            except Exception as exc:
                yield exc
                return
            if not meta:
                return
            yield buf, meta

    def _read_ahead(self):
        """:meth:`_read` in a reader thread, at most ``prefetch`` batches ahead."""
        q: queue.Queue = queue.Queue(self.prefetch)
        stop = threading.Event()
        end = object()

        def put(item) -> bool:
            """Queue ``item`` unless the consumer stopped first."""
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for item in self._read():
                    if not put(item):
                        return
            finally:
                put(end)

        t = threading.Thread(target=run, name="tlsdiag-read", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is end:
                    return
                yield item
        finally:
            stop.set()                  # consumer stopped early or finished: end the reader
            t.join()

    def _salvage(self, exc: Exception):
        """Deliver the packets before a corrupt record one at a time, then raise.  (Not
        from a stream: gone as read, it cannot be read again.)"""
        lost = ""
        try:
            if self.stream:
                lost = " (a stream: the up to %d before the bad record in its batch are not " \
                       "read)" % self.batch
                raise exc
            reader = pcapy.open_offline(self._tmp or self.path)
            for _ in range(self.packets):
                reader.next()
            while True:
                hdr, data = reader.next()
                if hdr is None:
                    break
                sec, usec = hdr.getts()
                self.packets += 1
                self.bytes_read += len(data) + 16
                yield data, _META.pack(sec, usec, 0, len(data))
        except Exception as again:
            exc = again
        raise CaptureError("%s: corrupt capture after %d packets%s: %s"
                           % (self.path, self.packets, lost, one_line(exc))) from None

    def close(self) -> None:
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self) -> "FileCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def unsupported_linktype(source: str, linktype: int) -> str:
    """The one message for a capture whose link type the decoder does not read."""
    return ("%s: link type %d is not supported (Ethernet, Linux cooked, raw IP and BSD loopback "
            "are)" % (source, linktype))
