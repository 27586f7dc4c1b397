"""CloudWatch Logs, the part SageMaker clients read: groups, streams, events.

Job and endpoint runners append lines as they are printed; clients page through them with the
same tokens AWS uses. The Airflow provider's ``print_log`` loop stops reading a stream when
GetLogEvents hands back the token it was given, so an exhausted stream must do exactly that.
Events are appended to one JSON-lines file per stream, so logs survive a restart.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import safepath
from .aws import ACCOUNT
from .errors import AwsError


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


MAX_FILE_NAME = 200  # quoted names longer than this (AWS allows 512 characters) are stored hashed
HASHED = "+"  # quote() never leaves a '+' in a name, so a hashed file name cannot be a quoted one
NAME_FILE = "+name"  # in a hashed group's directory: the group's name


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
            gname = _unq(gdir.name, gdir / NAME_FILE)
            if gname is None:
                continue  # created but never named (a crash between the two): it holds no events
            group = Group(gname, int(gdir.stat().st_mtime * 1000))
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
        prefix = p.get("logGroupNamePrefix", "")
        pattern = p.get("logGroupNamePattern")
        names = sorted(n for n in self._groups if n.startswith(prefix) and (not pattern or pattern in n))
        page, token = _page(names, p.get("nextToken"), p.get("limit", 50))
        groups = []
        for n in page:
            g = self._groups[n]
            groups.append(
                {
                    "logGroupName": n,
                    "creationTime": g.created,
                    "metricFilterCount": 0,
                    "arn": self._group_arn(n) + ":*",
                    "logGroupArn": self._group_arn(n),
                    "storedBytes": sum(s.stored_bytes for s in g.streams.values()),
                    "logGroupClass": "STANDARD",
                }
            )
        out: dict[str, Any] = {"logGroups": groups}
        if token:
            out["nextToken"] = token
        return out

    def api_DescribeLogStreams(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p.get("logGroupName") or _group_from_arn(p.get("logGroupIdentifier", "")))
        prefix = p.get("logStreamNamePrefix", "")
        order = p.get("orderBy", "LogStreamName")
        if order == "LastEventTime" and prefix:
            raise AwsError(
                "InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix."
            )
        streams = [s for n, s in g.streams.items() if n.startswith(prefix)]
        if order == "LastEventTime":
            streams.sort(key=lambda s: (s.events[-1]["timestamp"] if s.events else 0, s.name))
        else:
            streams.sort(key=lambda s: s.name)
        if p.get("descending"):
            streams.reverse()
        page, token = _page(streams, p.get("nextToken"), p.get("limit", 50))
        out: dict[str, Any] = {"logStreams": [self._stream_doc(g.name, s) for s in page]}
        if token:
            out["nextToken"] = token
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
        s = self._stream(p.get("logGroupName") or _group_from_arn(p.get("logGroupIdentifier", "")), p["logStreamName"])
        limit = int(p.get("limit", 10000))
        start, end = p.get("startTime"), p.get("endTime")
        idx = [
            i
            for i, e in enumerate(s.events)
            if (start is None or e["timestamp"] >= start) and (end is None or e["timestamp"] < end)
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
        g = self._group(p.get("logGroupName") or _group_from_arn(p.get("logGroupIdentifier", "")))
        names = p.get("logStreamNames")
        prefix = p.get("logStreamNamePrefix", "")
        start, end = p.get("startTime"), p.get("endTime")
        terms = _filter_terms(p.get("filterPattern", ""))
        limit = int(p.get("limit", 10000))
        matched = []
        for sname in sorted(g.streams):
            if names is not None and sname not in names:
                continue
            if not sname.startswith(prefix):
                continue
            for i, e in enumerate(g.streams[sname].events):
                if start is not None and e["timestamp"] < start:
                    continue
                if end is not None and e["timestamp"] > end:
                    continue
                if not all(t in e["message"] for t in terms):
                    continue
                matched.append((e["timestamp"], sname, i, e))
        matched.sort(key=lambda m: (m[0], m[1], m[2]))
        offset = int(p.get("nextToken", "0") or 0)
        page = matched[offset : offset + limit]
        out: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": sname,
                    "timestamp": e["timestamp"],
                    "message": e["message"],
                    "ingestionTime": e["ingestionTime"],
                    "eventId": f"{sname}/{i}",
                }
                for _, sname, i, e in page
            ],
            "searchedLogStreams": [],
        }
        if offset + limit < len(matched):
            out["nextToken"] = str(offset + limit)
        return out


def _group_from_arn(ident: str) -> str:
    if ident.startswith("arn:"):
        return ident.split(":log-group:", 1)[-1].removesuffix(":*")
    return ident


def _filter_terms(pattern: str) -> list[str]:
    """CloudWatch's simple term syntax: space-separated terms, all must match; quotes group."""
    pattern = pattern.strip()
    if not pattern:
        return []
    terms: list[str] = []
    buf, quoted = "", False
    for ch in pattern:
        if ch == '"':
            quoted = not quoted
            continue
        if ch == " " and not quoted:
            if buf:
                terms.append(buf)
            buf = ""
            continue
        buf += ch
    if buf:
        terms.append(buf)
    return terms


def _page(items: list[Any], token: str | None, limit: int) -> tuple[list[Any], str | None]:
    offset = int(token) if token else 0
    page = items[offset : offset + int(limit)]
    nxt = str(offset + int(limit)) if offset + int(limit) < len(items) else None
    return page, nxt
