"""Capture sources behind one small interface: an iterator of ``(buf, meta)`` batches as
pcapy-ng's ``next_batch`` returns them, plus the link type.

Files: pcap and pcapng (what the walk leaves: libpcap, pcapy-ng's own 1.9.1), gzip-compressed
ones too (decompressed as they are read by a :class:`Gunzip` child process into a pipe: no
temporary file).  A stream -- a pipe, ``/dev/stdin``, ``-`` (standard input), ``<(zcat
x.pcap.gz)`` -- is read once as it comes: pcap or pcapng, not gzip.  Plain pcap and pcapng
captures -- files, streams, gzip files' decompression -- are walked by ``sensor.pipeline``; what
it does not walk (another version, a pcapng capture that ``sensor.savefile`` leaves to libpcap,
what follows a record libpcap reads differently) comes here, a stream's through a
:class:`StreamRelay`.  A file that cannot be opened or is corrupt raises :class:`CaptureError`
with a one-line message -- after the packets that could be read were delivered (a stream's
read a packet at a time, since it cannot be read again; a file's batch with the bad record
read again so); a gzip file's error is that of its gzip data when that is what ended it.
"""
from __future__ import annotations

import logging
import os
import queue
import select
import signal
import stat
import struct
import threading
import zlib

import pcapy

from proto.text import one_line

__all__ = ["CaptureError", "FileCapture", "BATCH", "Gunzip", "StreamRelay", "is_stream",
           "is_gzip", "not_a_capture", "unsupported_linktype"]

log = logging.getLogger(__name__)

BATCH = 1024
#: batches read ahead by a reader thread (pcapy-ng's next_batch releases the GIL while
#: libpcap reads): reading overlaps parsing on a second core; bounded, ~0.5 MB a batch
PREFETCH = 4
_META = struct.Struct("=IIII")
_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")


class CaptureError(Exception):
    """A capture that cannot be read (or not to its end).  ``str()`` is one line.
    ``empty``: not a byte came out of it (a gzip file's decompression: its own error, if it
    has one, says why better)."""

    def __init__(self, message: str, empty: bool = False) -> None:
        super().__init__(message)
        self.empty = empty


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


def _open_offline(path: str):
    """libpcap's reader of ``path``.  (pcapy-ng passes libpcap a name as UTF-8: a name that is
    not -- its bytes kept as surrogates by Python -- is opened here and given as its
    ``/proc/self/fd`` link.)"""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        fd = os.open(path, os.O_RDONLY)
        try:
            return pcapy.open_offline("/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)            # (libpcap opened the file again)
    return pcapy.open_offline(path)


class FileCapture:
    """Batches from one capture file.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str, batch: int = BATCH, prefetch: int = PREFETCH, *,
                 relay: "StreamRelay | None" = None, packets: int = 0,
                 one_at_a_time: bool = False) -> None:
        """``relay``: read the rest of the stream ``path`` from there (``packets`` of it
        were read before, for the messages).  ``one_at_a_time``: a packet at a time from
        libpcap (put together into the same batches), so that the good packets of a batch
        that ends in a bad record are not lost with it when it cannot be read again -- five
        times slower to read (2.9 s against 0.57 s for 2.4 million packets): for what the
        walk leaves of a stream (the rest after a record or block libpcap refuses or reads
        differently, or all of one of a rare form)."""
        self.path = path
        self.batch = batch
        self.prefetch = prefetch
        self._relay = relay
        self._reader = None
        self.one_at_a_time = one_at_a_time
        self.packets = packets
        self.bytes_read = 0                # captured bytes + per-record headers: progress
        #: read as it comes (a pipe, standard input): never opened again, nor looked at
        #: before libpcap (its first bytes would be gone)
        self.stream = relay is not None or is_stream(path)
        src = path
        if relay is not None:
            src = relay.path
            self.size = 0
        elif self.stream:
            self.size = 0
        else:
            src = self._plain(path)
        gz = self._relay if isinstance(self._relay, Gunzip) else None
        try:
            self._reader = _open_offline(src)
            self.linktype = self._reader.datalink()
        except Exception as exc:
            message = "%s: cannot read capture: %s%s" % (
                path, one_line(exc), " (a stream is read as pcap or pcapng, not gzip)"
                if self.stream and relay is None and gz is None else "")
            if gz is not None:          # (corrupt gzip data: that is why)
                gz.close_fd()
                message = gz.error() or message
            self.close()
            raise CaptureError(message) from None
        finally:
            if gz is not None:          # (libpcap opened its own end of the pipe, or failed)
                gz.close_fd()

    def _plain(self, path: str) -> str:
        """What libpcap opens for the file ``path``: itself, or a gzip one's decompression
        (a :class:`Gunzip`: read as a stream, a packet at a time)."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
            self.size = os.path.getsize(path)
        except OSError as exc:
            raise CaptureError("%s: %s" % (path, exc.strerror or exc)) from None
        if is_gzip(head):
            self._relay = Gunzip(path)
            self.stream = self.one_at_a_time = True
            self.size = 0
            return self._relay.path
        error = not_a_capture(path, head, "file")
        if error is not None:
            self.close()
            raise CaptureError(error)
        return path

    def __iter__(self):
        """The batches, then (a gzip file's data cut short or corrupt) its error: that is
        why the capture ended, whatever libpcap made of the end."""
        try:
            yield from self._batches()
        except CaptureError:
            late = self._gzip_error()
            if late is not None:
                raise CaptureError(late) from None
            raise
        late = self._gzip_error()
        if late is not None:
            raise CaptureError(late)

    def _gzip_error(self) -> "str | None":
        if not isinstance(self._relay, Gunzip):
            return None
        if self._reader is not None:    # (libpcap's end of the pipe closed: the child ends)
            self._reader.close()
            self._reader = None
        return self._relay.error()

    def _batches(self):
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

    def _read(self):
        """``(buf, meta)`` batches, then the read error (as a value) if one ended them."""
        reader = self._reader
        if self.one_at_a_time:          # (libpcap's batch is lost whole with its bad record)
            while True:
                buf, meta, exc = one_by_one(reader, self.batch)
                if meta:
                    yield buf, meta
                if exc is not None:
                    yield exc
                    return
                if len(meta) < 16 * self.batch:
                    return
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
        """Deliver the packets of the batch that ends in a corrupt record (read again one at
        a time, as one batch), then raise.  (A stream cannot be read again: read one at a
        time, they were delivered already; read in batches, they are lost.)"""
        lost = ""
        try:
            if self.stream and not self.one_at_a_time:
                lost = " (a stream: the up to %d before the bad record in its batch are not " \
                       "read)" % self.batch
            elif not self.stream:
                reader = _open_offline(self.path)
                for _ in range(self.packets):
                    reader.next()
                buf, meta, again = one_by_one(reader, self.batch)
                if meta:
                    n = len(meta) >> 4
                    self.packets += n
                    self.bytes_read += len(buf) + 16 * n
                    yield buf, meta
                exc = again or exc
        except Exception as again:
            exc = again
        raise CaptureError("%s: corrupt capture after %d packets%s: %s"
                           % (self.path, self.packets, lost, one_line(exc))) from None

    def close(self) -> None:
        self._reader = None             # (libpcap's end of a relay: closed)
        if self._relay is not None:
            self._relay.close()
            self._relay = None

    def __enter__(self) -> "FileCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_gzip(head: bytes) -> bool:
    """Whether a file's first bytes are gzip's (RFC 1952)."""
    return head[:2] == b"\x1f\x8b"


def not_a_capture(path: str, head: bytes, what: str) -> "str | None":
    """The one message for a capture ``what`` ("file", "stream") whose first bytes ``head``
    are neither pcap's nor pcapng's, else None."""
    if head[:4] in _PCAP_MAGICS:
        return None
    if what == "stream" and is_gzip(head):
        return "%s: a stream is read as pcap or pcapng, not gzip" % path
    return "%s: not a pcap or pcapng %s%s" % (path, what, "" if head else " (it is empty)")


def one_by_one(reader, limit: int) -> tuple:
    """``(buf, meta, error)``: up to ``limit`` packets read from a pcapy reader one at a time,
    put together as ``next_batch`` returns them -- those before a bad record as well, with
    its error (else None)."""
    bufs, metas, at, exc = [], [], 0, None
    pack = _META.pack
    try:
        for _ in range(limit):
            hdr, data = reader.next()
            if hdr is None:
                break
            sec, usec = hdr.getts()
            bufs.append(data)
            # (as next_batch packs them: libpcap's 64-bit seconds cut to 32 bits)
            metas.append(pack(sec & 0xFFFFFFFF, usec & 0xFFFFFFFF, at, len(data)))
            at += len(data)
    except Exception as e:                      # (pcapy.PcapError: libpcap's message)
        exc = e
    return b"".join(bufs), b"".join(metas), exc


class StreamRelay:
    """The rest of a stream, for libpcap: ``head`` (bytes read from it already), then what
    still comes from ``fd`` (which it takes), through a pipe that a child process fills;
    libpcap opens :attr:`path`.  (A process, not a thread: pcapy's ``next`` holds the GIL
    while libpcap waits on the pipe.)  The child ends at the stream's end, or when the pipe's
    reading ends are closed; :meth:`close` ends it in any case."""

    def __init__(self, fd: int, head: bytes) -> None:
        """Raises OSError (``fd`` still the caller's) if there is no pipe or process."""
        r, w = os.pipe()
        try:
            pid = _fork_child((fd, w), _copy, fd, head, w)
        except OSError:
            os.close(r)
            os.close(w)
            raise
        os.close(w)
        os.close(fd)
        self._pid = pid
        self._r = r
        self.path = "/dev/fd/%d" % r

    def close(self) -> None:
        if self._r >= 0:
            os.close(self._r)
            self._r = -1
        self._pid = _end_child(self._pid)               # (it may wait on the stream)


def _copy(fd: int, head: bytes, w: int) -> None:
    try:
        chunk = head
        while chunk:
            _write_all(w, chunk)
            chunk = os.read(fd, 1 << 16)
    except OSError:         # libpcap is done with it (EPIPE), or reading the stream failed
        pass                # (then libpcap finds the capture cut short)


def _fork_child(keep, run, *args) -> int:
    """Fork a child process that closes every file descriptor but ``keep``, runs
    ``run(*args)`` and exits (touching nothing else of its parent's); its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            _close_all_but(*keep)
            run(*args)
        finally:
            os._exit(0)
    return pid


def _end_child(pid: int) -> int:
    """Kill the child ``pid`` (if any: 0 is none) and reap it; 0."""
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return 0


def _close_all_but(*keep: int) -> None:
    """Close every file descriptor of this (child) process but ``keep``."""
    lo = 0
    for fd in sorted(keep):
        os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, os.sysconf("SC_OPEN_MAX"))


class Gunzip:
    """A gzip file decompressed into a pipe as it is read, by a child process: no temporary
    file, the decompression on another core, the child's memory bounded (:data:`CHUNK` of
    output at a time, a gzip bomb's too).  Concatenated members are one stream.  :attr:`path`
    (``/dev/fd/N``) and :attr:`fd` are the pipe's reading end, :attr:`fds` all of them:
    with ``outputs`` > 1 as many pipes, each given the whole stream (``--jobs`` workers: one
    decompression for all).  A caller that takes one removes it from :attr:`fds`;
    :meth:`close_fd` closes the others.  :meth:`error`, once every reading end is closed,
    waits for the child and gives the message of a gzip error that ended the data early,
    else None."""

    CHUNK = 1 << 20
    WAIT = 5.0

    def __init__(self, path: str, outputs: int = 1) -> None:
        """Raises :class:`CaptureError` if there is no pipe or process to be had."""
        self._pid, self._status, self.fds = 0, -1, []
        fds: list = []
        try:
            for _ in range(outputs + 1):        # (the last: the status)
                fds += os.pipe()
            writes = fds[1::2]
            pid = _fork_child(writes, _gunzip_child, path, writes, self.CHUNK)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise CaptureError("%s: cannot decompress: %s" % (path, exc.strerror or exc)) \
                from None
        reads = fds[0::2]
        for fd in writes:
            os.close(fd)
        self._source = path
        self._pid, self._status = pid, reads[-1]
        self.fds = reads[:-1]
        self.fd = self.fds[0]
        self.path = "/dev/fd/%d" % self.fd

    def close_fd(self) -> None:
        """Close :attr:`fds` (those the caller did not take)."""
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def error(self) -> "str | None":
        """The gzip error that ended the data, else None: once the readers are done.  (A
        child that gave no status -- killed, failed -- is an error too; one still writing
        after :data:`WAIT` s was stopped by a reader still open, not by gzip: None.)"""
        message = None
        if self._status >= 0:
            try:
                if select.select([self._status], [], [], self.WAIT)[0]:
                    status = os.read(self._status, 4096)
                    message = status[1:].decode(errors="replace") if status[:1] == b"=" \
                        else "%s: decompression stopped before the end of the file (its " \
                             "process was killed or failed)" % self._source
            except OSError:
                pass
            os.close(self._status)
            self._status = -1
        self.close()
        return message or None

    def close(self) -> None:
        self.close_fd()
        self._pid = _end_child(self._pid)               # (it may wait on the pipe)
        if self._status >= 0:
            os.close(self._status)
            self._status = -1


def _gunzip_child(path: str, writes: list, chunk: int) -> None:
    """A :class:`Gunzip` child: the data into ``writes[:-1]``, then its status into
    ``writes[-1]`` after a mark (without the mark, the child did not finish)."""
    message = _gunzip(path, writes[:-1], chunk)
    for fd in writes[:-1]:              # (the data's ends: EOF first)
        os.close(fd)
    os.write(writes[-1], b"=" + message.encode(errors="replace"))


def _gunzip(path: str, outputs: list, chunk: int) -> str:
    """Decompress the gzip file ``path`` into each of ``outputs``: "" at its end (or when
    every reader is gone), else the message of what ended it early."""
    try:
        src = open(path, "rb")
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror or exc)
    z = zlib.decompressobj(wbits=31)            # gzip framing
    try:
        with src:
            while True:
                data = src.read(chunk)
                if not data:
                    break
                while data:
                    if z.eof:                   # another member (concatenated gzip)
                        z = zlib.decompressobj(wbits=31)
                    _tee(outputs, z.decompress(data, chunk))
                    data = z.unused_data if z.eof else z.unconsumed_tail
            _tee(outputs, z.flush())
    except zlib.error as exc:
        return "%s: corrupt gzip data: %s" % (path, one_line(exc))
    except BrokenPipeError:                     # (every reader is done with it)
        return ""
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror or exc)
    return "" if z.eof else "%s: truncated gzip data" % path


def _tee(outputs: list, data: bytes) -> None:
    """``data`` to each of ``outputs`` still read (those whose reader is gone are dropped);
    BrokenPipeError when none is."""
    for fd in list(outputs):
        try:
            _write_all(fd, data)
        except BrokenPipeError:
            outputs.remove(fd)
    if not outputs:
        raise BrokenPipeError


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unsupported_linktype(source: str, linktype: int) -> str:
    """The one message for a capture whose link type the decoder does not read."""
    return ("%s: link type %d is not supported (Ethernet, Linux cooked, raw IP and BSD loopback "
            "are)" % (source, linktype))
