"""CloudWatch Logs, the part SageMaker clients read: groups, streams, events.

Job and endpoint runners append lines as they are printed; clients page through them with the
same tokens AWS uses. The Airflow provider's ``print_log`` loop stops reading a stream when
GetLogEvents hands back the token it was given, so an exhausted stream must do exactly that.
Events are appended to one JSON-lines file per stream, so logs survive a restart.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import safepath
from .aws import ACCOUNT
from .errors import AwsError
from .service import BaseService, Handler


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Stream:
    name: str
    created: int
    events: list[dict[str, Any]] = field(default_factory=list)
    stored_bytes: int = 0
    path: Path | None = None  # its events file, checked to be inside the group's directory once


@dataclass
class Group:
    name: str
    created: int
    streams: dict[str, Stream] = field(default_factory=dict)
    retention: int | None = None  # retentionInDays; None: events never expire

    def cutoff(self) -> int | None:
        """Events with an older timestamp have expired (retention counted back from now)."""
        return None if self.retention is None else _now_ms() - self.retention * DAY_MS


DAY_MS = 86_400_000
# PutRetentionPolicy's allowed retentionInDays (CloudWatch Logs API reference)
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                  2922, 3288, 3653)


MAX_FILE_NAME = 200  # quoted names longer than this (AWS allows 512 characters) are stored hashed
HASHED = "+"  # quote() never leaves a '+' in a name, so a hashed file name cannot be a quoted one
NAME_FILE = "+name"  # in a hashed group's directory: the group's name
RETENTION_FILE = "+retention"  # in a group's directory: its retentionInDays, when it has a policy
DELETED = "+deleted-"  # a group directory renamed on its way out (removed on the next start if a crash left it)


def _q(name: str) -> str:
    """A group or stream name as one file name: '/' is quoted, and so are the dots of a name that is
    only dots ('.' and '..' are valid AWS names, but as file names they are this directory and the
    one above it). A name too long to be a file name becomes '+<sha256>' (the name kept beside it)."""
    q = urllib.parse.quote(name, safe="", errors="surrogatepass")
    if q.strip(".") == "":
        q = q.replace(".", "%2E")
    if len(q) > MAX_FILE_NAME:
        q = HASHED + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return q


def _unq(file_name: str, name_file: Path) -> str | None:
    """The name a file name stands for (None: a hashed name whose name file is missing)."""
    if not file_name.startswith(HASHED):
        return urllib.parse.unquote(file_name, errors="surrogatepass")
    try:
        return name_file.read_text(encoding="utf-8", errors="surrogatepass")
    except OSError:
        return None


class LogStore:
    def __init__(self, root: Path, region: str = "us-east-1", account: str = ACCOUNT) -> None:
        self.root = root
        self.region = region
        self.account = account
        self._lock = threading.RLock()
        self._groups: dict[str, Group] = {}
        root.mkdir(parents=True, exist_ok=True)
        self._load()

    # ---- persistence ------------------------------------------------------------------------
    def _load(self) -> None:
        for gdir in sorted(self.root.iterdir()):
            if not gdir.is_dir():
                continue
            if gdir.name.startswith(DELETED):
                shutil.rmtree(gdir, ignore_errors=True)  # DeleteLogGroup was interrupted after its rename
                continue
            gname = _unq(gdir.name, gdir / NAME_FILE)
            if gname is None:
                continue  # created but never named (a crash between the two): it holds no events
            group = Group(gname, int(gdir.stat().st_mtime * 1000))
            try:
                group.retention = int((gdir / RETENTION_FILE).read_text())
            except (OSError, ValueError):
                pass
            self._groups[gname] = group
            for f in sorted(gdir.glob("*.jsonl")):
                sname = _unq(f.name[: -len(".jsonl")], f.with_suffix(".name"))
                if sname is None:
                    continue
                stream = Stream(sname, int(f.stat().st_mtime * 1000), path=f)
                with f.open(encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            ev = json.loads(line)
                        except json.JSONDecodeError:
                            continue  # a torn last line from a crash
                        stream.events.append(ev)
                        stream.stored_bytes += len(ev.get("message", ""))
                if stream.events:
                    stream.created = stream.events[0]["ingestionTime"]
                group.streams[sname] = stream

    def _group_dir(self, group: str) -> Path:
        try:
            return safepath.inside(self.root, _q(group))
        except safepath.PathEscape as exc:
            raise AwsError("InvalidParameterException", f"The specified log group name {exc.part} is not valid.") from exc

    def _stream_file(self, group: str, stream: str) -> Path:
        try:
            return safepath.inside(self._group_dir(group), _q(stream) + ".jsonl")
        except safepath.PathEscape as exc:
            raise AwsError("InvalidParameterException", f"The specified log stream name {exc.part} is not valid.") from exc

    # ---- writing (used by runners) -------------------------------------------------------------
    def ensure_group(self, group: str) -> Group:
        with self._lock:
            g = self._groups.get(group)
            if g is None:
                g = Group(group, _now_ms())
                gdir = self._group_dir(group)
                gdir.mkdir(parents=True, exist_ok=True)
                if gdir.name.startswith(HASHED):
                    (gdir / NAME_FILE).write_text(group, encoding="utf-8", errors="surrogatepass")
                self._groups[group] = g
            return g

    def ensure_stream(self, group: str, stream: str) -> Stream:
        with self._lock:
            g = self.ensure_group(group)
            s = g.streams.get(stream)
            if s is None:
                path = self._stream_file(group, stream)
                if path.name.startswith(HASHED):
                    path.with_suffix(".name").write_text(stream, encoding="utf-8", errors="surrogatepass")
                path.touch()
                s = Stream(stream, _now_ms(), path=path)
                g.streams[stream] = s
            return s

    def put(self, group: str, stream: str, messages: list[str], timestamp: int | None = None) -> None:
        if not messages:
            return
        with self._lock:
            s = self.ensure_stream(group, stream)
            now = _now_ms()
            ts = timestamp if timestamp is not None else now
            new = [{"timestamp": ts, "message": m, "ingestionTime": now} for m in messages]
            s.events.extend(new)
            s.stored_bytes += sum(len(m) for m in messages)
            with (s.path or self._stream_file(group, stream)).open("a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(e) + "\n" for e in new))

    def text(self, group: str, stream_prefix: str = "") -> str:
        """All messages of the streams under a prefix (for tests and failure reasons)."""
        with self._lock:
            g = self._groups.get(group)
            if g is None:
                return ""
            return "\n".join(
                e["message"] for n, s in sorted(g.streams.items()) if n.startswith(stream_prefix) for e in s.events
            )

    # ---- API ----------------------------------------------------------------------------------
    def _group(self, name: str) -> Group:
        g = self._groups.get(name)
        if g is None:
            raise AwsError("ResourceNotFoundException", "The specified log group does not exist.")
        return g

    def _stream(self, group: str, name: str) -> Stream:
        s = self._group(group).streams.get(name)
        if s is None:
            raise AwsError("ResourceNotFoundException", "The specified log stream does not exist.")
        return s

    def _group_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}"

    def handle(self, action: str, p: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(self, "api_" + action, None)
        if fn is None:
            raise AwsError("UnknownOperationException", f"Operation {action} is not supported by localmaker.")
        with self._lock:
            return fn(p)

    def api_CreateLogGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["logGroupName"] in self._groups:
            raise AwsError("ResourceAlreadyExistsException", "The specified log group already exists")
        self.ensure_group(p["logGroupName"])
        return {}

    def api_CreateLogStream(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p["logGroupName"])
        if p["logStreamName"] in g.streams:
            raise AwsError("ResourceAlreadyExistsException", "The specified log stream already exists")
        self.ensure_stream(p["logGroupName"], p["logStreamName"])
        return {}

    def api_PutLogEvents(self, p: dict[str, Any]) -> dict[str, Any]:
        self._stream(p["logGroupName"], p["logStreamName"])
        for ev in p["logEvents"]:
            self.put(p["logGroupName"], p["logStreamName"], [ev["message"]], int(ev["timestamp"]))
        return {"nextSequenceToken": str(_now_ms())}

    def api_DescribeLogGroups(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p.get("logGroupNamePrefix")
        pattern = p.get("logGroupNamePattern")
        if prefix is not None and pattern is not None:
            raise AwsError(
                "InvalidParameterException", "LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive."
            )
        if p.get("logGroupIdentifiers"):
            wanted = {_group_from_arn(i) for i in p["logGroupIdentifiers"]}
            names = sorted(n for n in self._groups if n in wanted)
        else:  # the pattern is a case-sensitive substring search
            names = sorted(n for n in self._groups if n.startswith(prefix or "") and (pattern or "") in n)
        if p.get("logGroupClass") not in (None, "STANDARD"):
            names = []  # every group localmaker keeps is a STANDARD one
        after = _decode_token(p.get("nextToken"))
        if after is not None:
            if not isinstance(after, str):
                raise ValueError("not a DescribeLogGroups token")
            names = [n for n in names if n > after]
        limit = int(p.get("limit", 50))
        page = names[:limit]
        groups = []
        for n in page:
            g = self._groups[n]
            doc: dict[str, Any] = {"logGroupName": n, "creationTime": g.created, "arn": self._group_arn(n) + ":*"}
            if pattern is None:  # AWS answers a pattern search with the name, creation time and ARN only
                if g.retention is not None:
                    doc["retentionInDays"] = g.retention
                doc.update(
                    {
                        "metricFilterCount": 0,
                        "logGroupArn": self._group_arn(n),
                        "storedBytes": sum(s.stored_bytes for s in g.streams.values()),
                        "logGroupClass": "STANDARD",
                    }
                )
            groups.append(doc)
        out: dict[str, Any] = {"logGroups": groups}
        if len(names) > limit:
            out["nextToken"] = _encode_token(page[-1])
        return out

    def api_PutRetentionPolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        days = p["retentionInDays"]
        if days not in RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in RETENTION_DAYS)
            raise AwsError(
                "InvalidParameterException",
                f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{allowed}]",
            )
        g = self._group(p["logGroupName"])
        _write_atomic(self._group_dir(g.name) / RETENTION_FILE, str(days))
        g.retention = days
        return {}

    def api_DeleteRetentionPolicy(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p["logGroupName"])
        (self._group_dir(g.name) / RETENTION_FILE).unlink(missing_ok=True)
        g.retention = None
        return {}

    def api_DeleteLogGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p["logGroupName"])
        gdir = self._group_dir(g.name)  # inside logs/ (checked), never a path a name could point elsewhere
        # renamed first (one atomic step: a crash mid-removal cannot bring back half a group), then removed
        gone = gdir.with_name(f"{DELETED}{_now_ms()}-{threading.get_ident()}")
        if gdir.exists():
            gdir.rename(gone)
            shutil.rmtree(gone, ignore_errors=True)
        del self._groups[g.name]
        return {}

    def api_DeleteLogStream(self, p: dict[str, Any]) -> dict[str, Any]:
        s = self._stream(p["logGroupName"], p["logStreamName"])
        path = s.path or self._stream_file(p["logGroupName"], s.name)
        path.unlink(missing_ok=True)
        if path.name.startswith(HASHED):
            path.with_suffix(".name").unlink(missing_ok=True)
        del self._groups[p["logGroupName"]].streams[s.name]
        return {}

    def api_DescribeLogStreams(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p.get("logGroupName") or _group_from_arn(p.get("logGroupIdentifier", "")))
        prefix = p.get("logStreamNamePrefix", "")
        order = p.get("orderBy", "LogStreamName")
        if order == "LastEventTime" and prefix:
            raise AwsError(
                "InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix."
            )
        def sort_key(s: Stream) -> list[Any]:
            return [s.events[-1]["timestamp"] if s.events else 0, s.name] if order == "LastEventTime" else [s.name]

        descending = bool(p.get("descending"))
        streams = sorted((s for n, s in g.streams.items() if n.startswith(prefix)), key=sort_key, reverse=descending)
        # the token is the sort key of the last stream handed out, not a position: deleting the streams of
        # one page (what a clean-up loop over the paginator does) does not make the next page skip any
        after = _decode_token(p.get("nextToken"))
        if after is not None:
            shape = [type(v) for v in sort_key(streams[0])] if streams else None
            if not isinstance(after, list) or (shape is not None and [type(v) for v in after] != shape):
                raise ValueError("not a DescribeLogStreams token for this ordering")
            streams = [s for s in streams if (sort_key(s) < after if descending else sort_key(s) > after)]
        limit = int(p.get("limit", 50))
        page = streams[:limit]
        out: dict[str, Any] = {"logStreams": [self._stream_doc(g.name, s) for s in page]}
        if len(streams) > limit:
            out["nextToken"] = _encode_token(sort_key(page[-1]))
        return out

    def _stream_doc(self, group: str, s: Stream) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "logStreamName": s.name,
            "creationTime": s.created,
            "arn": f"{self._group_arn(group)}:log-stream:{s.name}",
            "storedBytes": s.stored_bytes,
        }
        if s.events:
            doc["firstEventTimestamp"] = s.events[0]["timestamp"]
            doc["lastEventTimestamp"] = s.events[-1]["timestamp"]
            doc["lastIngestionTime"] = s.events[-1]["ingestionTime"]
        return doc

    def api_GetLogEvents(self, p: dict[str, Any]) -> dict[str, Any]:
        gname = p.get("logGroupName") or _group_from_arn(p.get("logGroupIdentifier", ""))
        s = self._stream(gname, p["logStreamName"])
        limit = int(p.get("limit", 10000))
        start, end = p.get("startTime"), p.get("endTime")
        expired = self._groups[gname].cutoff()
        idx = [
            i
            for i, e in enumerate(s.events)
            if (start is None or e["timestamp"] >= start) and (end is None or e["timestamp"] < end)
            and (expired is None or e["timestamp"] >= expired)
        ]
        token = p.get("nextToken")
        from_head = bool(p.get("startFromHead", False))
        if token:
            direction, _, pos_s = token.partition("/")
            try:
                pos = int(pos_s)
            except ValueError as exc:
                raise AwsError("InvalidParameterException", "The specified nextToken is invalid.") from exc
            if direction == "f":
                chosen = [i for i in idx if i >= pos][:limit]
            elif direction == "b":
                chosen = [i for i in idx if i < pos][-limit:]
            else:
                raise AwsError("InvalidParameterException", "The specified nextToken is invalid.")
        elif from_head:
            chosen = idx[:limit]
            pos = idx[0] if idx else len(s.events)
        else:
            chosen = idx[-limit:]
            pos = len(s.events)
        events = [dict(s.events[i]) for i in chosen]
        if chosen:
            fwd = f"f/{chosen[-1] + 1}"
            back = f"b/{chosen[0]}"
        else:
            # An exhausted stream answers with the token it was given: that is how readers stop.
            fwd = token if token and token.startswith("f/") else f"f/{pos}"
            back = token if token and token.startswith("b/") else f"b/{pos}"
        return {"events": events, "nextForwardToken": fwd, "nextBackwardToken": back}

    def api_FilterLogEvents(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("logGroupName") and p.get("logGroupIdentifier"):
            raise AwsError(
                "InvalidParameterException", "LogGroup name and LogGroup ARN are mutually exclusive parameters."
            )
        if p.get("logStreamNames") is not None and p.get("logStreamNamePrefix") is not None:
            raise AwsError(
                "InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive parameters."
            )
        g = self._group(p.get("logGroupName") or _group_from_arn(p.get("logGroupIdentifier", "")))
        names = p.get("logStreamNames")
        prefix = p.get("logStreamNamePrefix", "")
        start, end = p.get("startTime"), p.get("endTime")
        expired = g.cutoff()
        match = filter_matcher(p.get("filterPattern", ""))
        limit = int(p.get("limit", 10000))
        token = _decode_token(p.get("nextToken"))
        if token is not None:
            # [direction, timestamp, stream, index] of the last event handed out
            if not (isinstance(token, list) and len(token) == 4 and token[0] in ("f", "b")):
                raise ValueError("not a FilterLogEvents token")
            forward = token[0] == "f"
            last = (int(token[1]), str(token[2]), int(token[3]))
        else:
            forward = bool(p.get("startFromHead", True))
            last = None
        matched = []
        for sname in sorted(g.streams):
            if names is not None and sname not in names:
                continue
            if not sname.startswith(prefix):
                continue
            for i, e in enumerate(g.streams[sname].events):
                ts = e["timestamp"]
                if (start is not None and ts < start) or (end is not None and ts > end):
                    continue
                if expired is not None and ts < expired:
                    continue
                key = (ts, sname, i)
                if last is not None and (key <= last if forward else key >= last):
                    continue
                if not match(e["message"]):
                    continue
                matched.append((key, e))
        # events of every stream interleaved by time (ties: stream name, then order of arrival)
        matched.sort(key=lambda m: m[0], reverse=not forward)
        page = matched[:limit]
        out: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": sname,
                    "timestamp": e["timestamp"],
                    "message": e["message"],
                    "ingestionTime": e["ingestionTime"],
                    "eventId": _event_id(g.name, sname, i, e["timestamp"]),
                }
                for (_, sname, i), e in page
            ],
            "searchedLogStreams": [],
        }
        if len(matched) > limit:
            ts, sname, i = page[-1][0]
            out["nextToken"] = _encode_token(["f" if forward else "b", ts, sname, i])
        return out


class LogsService(BaseService):
    """The CloudWatch Logs operations (``X-Amz-Target: Logs_20140328.*``) over a :class:`LogStore`."""

    api = "logs"

    def __init__(self, logs: LogStore) -> None:
        self.logs = logs

    def operations(self) -> Mapping[str, Handler]:
        return {name[len("api_"):]: functools.partial(self._call, name[len("api_"):])
                for name in dir(LogStore) if name.startswith("api_")}

    def _call(self, action: str, p: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.logs.handle(action, p)
        except ValueError as exc:  # a nextToken that is not one of ours (CloudWatch Logs' own answer)
            if p.get("nextToken") is not None:
                raise AwsError("InvalidParameterException", "The specified nextToken is invalid.") from exc
            raise


def _group_from_arn(ident: str) -> str:
    if ident.startswith("arn:"):
        return ident.split(":log-group:", 1)[-1].removesuffix(":*")
    return ident


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _event_id(group: str, stream: str, index: int, ts: int) -> str:
    """A decimal string, like CloudWatch's event ids: unique per group, stable across calls."""
    h = int.from_bytes(hashlib.sha256(f"{group}\0{stream}".encode("utf-8", "surrogatepass")).digest()[:6], "big")
    return f"{ts:015d}{h:015d}{index:010d}"


def _encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _decode_token(token: str | None) -> Any:
    """A token this store handed out (None: no token); anything else is a ValueError, which the
    server answers as CloudWatch Logs does: InvalidParameterException "The specified nextToken is invalid."."""
    if token is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeError) as exc:
        raise ValueError("not a token of this store") from exc


def filter_matcher(pattern: str) -> Any:
    """A predicate over an event's message for CloudWatch's filter pattern syntax of unstructured logs:
    terms (all must appear, case-sensitive), ``"quoted phrases"`` (matched as written), ``?term``
    (at least one of these must appear), ``-term`` (must not appear), and ``%regex%``. An empty
    pattern (or ``""``) matches every event. JSON (``{ ... }``) and space-delimited (``[ ... ]``)
    patterns are refused with InvalidParameterException rather than matched wrongly."""
    text = pattern.strip()
    if not text or text == '""':
        return lambda message: True
    if len(text) >= 2 and text.startswith("%") and text.endswith("%"):
        try:
            rx = re.compile(text[1:-1])
        except re.error as exc:
            raise AwsError("InvalidParameterException", f"Invalid filter pattern: {pattern}") from exc
        return lambda message: rx.search(message) is not None
    if text.startswith(("{", "[")):
        raise AwsError(
            "InvalidParameterException",
            "localmaker supports term, quoted-phrase, ?term, -term and %regex% filter patterns; "
            f"JSON and space-delimited patterns are not supported: {pattern}",
        )
    required: list[str] = []
    anyof: list[str] = []
    excluded: list[str] = []
    for m in re.finditer(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))', text):
        op, quoted, bare = m.group(1), m.group(2), m.group(3)
        term = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        if quoted is None and '"' in term:
            raise AwsError("InvalidParameterException", f"Invalid filter pattern: {pattern}")
        {"?": anyof, "-": excluded}.get(op, required).append(term)

    def match(message: str) -> bool:
        return (
            all(t in message for t in required)
            and (not anyof or any(t in message for t in anyof))
            and not any(t in message for t in excluded)
        )

    return match
