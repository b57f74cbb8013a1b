#!/usr/bin/env python3
"""Validates recorded Herald frames against the generated JSON Schemas with Python's `jsonschema`.

A second consumer language for schemas/*.schema.json (the first is TypeScript, see client.ts):

1. every frame of the conformance sessions (conformance/sessions, sessions-auth, tests/sessions),
   each pattern turned into one concrete frame it matches;
2. every JSON example of the wire contract (../shared/WIRE.md beside the repository, or
   $HERALD_WIRE_MD), as the chapter sends it and, for server frames, with the fields Herald's
   capabilities add;
3. a few frames that must be refused, so the check cannot pass by accepting everything.

Written independently of the Rust tests that do the same (protocol/tests/recorded_sessions.rs,
wire_examples.rs): it reads only the schema files, so it proves them usable outside Rust.

usage: validate_frames.py REPO_ROOT
"""

import json
import os
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

TS = "2026-11-28T03:56:29.123Z"


def load_validators(schemas_dir):
    validators = {}
    for path in sorted(schemas_dir.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        stem = path.name[: -len(".schema.json")]
        validators[stem] = Draft202012Validator(schema, format_checker=FormatChecker())
    if not validators:
        sys.exit(f"no *.schema.json in {schemas_dir}")
    # date-time must really be checked, or timestamps are not validated at all.
    probe = validators["sse-ping"]
    if probe.is_valid({"timestamp": "yesterday"}):
        sys.exit("the date-time format is not checked: install rfc3339-validator")
    return validators


# ---------------------------------------------------------------- conformance sessions

SSE_STEMS = {
    "connect": "sse-connect",
    "ping": "sse-ping",
    "notification": "sse-notification",
    "update": "sse-update",
    "stock_update": "sse-stock-update",
    "news": "sse-news",
}


def instantiate(pattern, key=""):
    """One concrete value that a session pattern matches."""
    if isinstance(pattern, str):
        is_open = (
            pattern in ("$any", "$string")
            or pattern.startswith("$capture:")
            or (pattern.startswith("${") and pattern.endswith("}") and pattern.count("${") == 1)
        )
        if pattern == "$number" or (is_open and key == "offset"):
            return 1
        # Open patterns on fields whose type is not a string.
        if is_open and key == "protocol":
            return "1.1"
        if is_open and key == "capabilities":
            return ["recovery"]
        if is_open and key == "recovered":
            return True
        if pattern == "$timestamp":
            return TS
        if is_open:
            return f"{key}-1"
        if pattern.startswith("$$"):
            return pattern[1:]
        return pattern.replace("${run}", "r1a2b3").replace("${session}", "session")
    if isinstance(pattern, list):
        return [instantiate(v, key) for v in pattern]
    if isinstance(pattern, dict):
        if "$unordered" in pattern:
            return instantiate(pattern["$unordered"], key)
        if "$one_of" in pattern:
            return instantiate(pattern["$one_of"][0], key)
        if "$optional" in pattern:
            # A capability's field, checked as present (the capability-on frame).
            return instantiate(pattern["$optional"], key)
        if "$regex" in pattern or "$not" in pattern:
            return instantiate("$string", key)
        forms = [k for k in pattern if k.startswith("$")]
        if forms:
            raise ValueError(f"unknown pattern form {forms[0]} in {pattern}")
        return {k: instantiate(v, k) for k, v in pattern.items()}
    return pattern


def session_frames(path):
    steps = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("//"):
            steps.append((number, json.loads(text)))
    out = []
    for index, (number, step) in enumerate(steps[1:], 1):
        at = f"{path.name}:{number}"
        actor = step.get("actor")
        if "send" in step:
            nxt = next(
                (s["expect"] for _, s in steps[index + 1 :] if s.get("actor") == actor and "expect" in s),
                None,
            )
            provokes = (
                isinstance(nxt, dict)
                and nxt.get("type") == "error"
                and nxt.get("code") in ("invalid_message", "invalid_format", "unknown_type")
            )
            if not provokes:
                out.append((at, "client-message", step["send"]))
        for key in ("expect", "expect_optional"):
            if key in step:
                out.append((at, "server-message", step[key]))
        for frame in step.get("expect_unordered", []):
            out.append((at, "server-message", frame))
        if "expect_event" in step:
            event = step["expect_event"]
            stem = SSE_STEMS.get(event.get("event"))
            if stem and "data" in event:
                out.append((at, stem, event["data"]))
        if "http" in step:
            http = step["http"]
            route = (http.get("method"), http.get("path"))
            stems = {
                ("POST", "/notifications"): ("notify-request", "notify-response"),
                ("POST", "/updates"): ("update-request", "update-response"),
            }.get(route)
            if not stems:
                continue
            expect = http.get("expect", {})
            if expect.get("status") == 200 and "body" in http:
                out.append((at, stems[0], http["body"]))
            if "body" in expect:
                body = expect["body"]
                stem = "error-response" if isinstance(body, dict) and body.get("success") is False else stems[1]
                out.append((at, stem, body))
    return [(at, stem, instantiate(pattern)) for at, stem, pattern in out]


# ---------------------------------------------------------------- WIRE.md

CLIENT_TYPES = {"join", "leave", "chat", "typing", "private_message", "ping"}
SERVER_TYPES = {
    "welcome", "room_joined", "user_joined", "room_left", "user_left", "chat", "typing",
    "private_message", "notification", "pong", "error",
}
SAMPLES = {
    "timestamp": TS, "clientId": "c-7f3a", "id": "m-1", "notificationId": "n-1", "userId": "u1",
    "target": "user123", "message": "Not in a room", "code": "not_in_room", "type": "info",
    "resource": "order", "action": "created", "data": {"id": 42},
}
# Fields Herald's capabilities add to core server frames.
CAPABILITY_FIELDS = {
    "room_joined": [{"epoch": "e1", "offset": 3}, {"epoch": "e1", "offset": 3, "recovered": True}],
    "user_joined": [{"room": "general"}],
    "user_left": [{"room": "general"}],
    "typing": [{"room": "general"}],
    "chat": [{"offset": 7}],
    "welcome": [{"protocol": "1.1", "capabilities": ["recovery", "offsets", "room-in-presence", "app-ping"]}],
}


def code_spans(text):
    return text.split("`")[1::2]


def classify(span, section, column, first_cell, post, number):
    m = re.match(r'^\{"type":"([a-z_]+)"', span)
    if m:
        if section != "ws":
            raise ValueError(f"WIRE.md line {number}: typed frame outside the WebSocket section")
        if "client → server" in first_cell:
            return "client-message"
        if "server →" in first_cell:
            return "server-message"
        tag = m.group(1)
        if (tag in CLIENT_TYPES) != (tag in SERVER_TYPES):
            return "client-message" if tag in CLIENT_TYPES else "server-message"
        raise ValueError(f"WIRE.md line {number}: cannot tell the direction of {span}")
    if span.startswith('{"success":false'):
        return "error-response"
    if span.startswith('{"success":true,"notificationId"'):
        return "notify-response"
    if span == '{"success":true}':
        return "update-response"
    if column == 0 and post == "/notifications":
        return "notify-request"
    if column == 0 and post == "/updates":
        return "update-request"
    if span.startswith('{"id":') and '"name":' in span:
        return "user"
    raise ValueError(f"WIRE.md line {number}: cannot tell what {span} is")


def wire_examples(text):
    out = []
    section, in_fence, last_event = "", False, None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if line.startswith("## "):
            section = "ws" if "WebSocket" in line else "sse" if "Server-Sent Events" in line else ""
            continue
        if in_fence:
            cells = [([line], "")]
        elif line.startswith("|"):
            parts = line.strip("|").split("|")
            cells = [(code_spans(p), parts[0]) for p in parts]
        else:
            cells = [(code_spans(line), "")]
        for column, (spans, first_cell) in enumerate(cells):
            post = None
            for span in spans:
                span = span.strip()
                if span.startswith("event: "):
                    last_event = span[len("event: "):].strip()
                elif span.startswith("POST "):
                    post = span[len("POST "):].strip()
                elif span.startswith("data: {"):
                    if last_event not in SSE_STEMS:
                        raise ValueError(f"WIRE.md line {number}: data for event {last_event!r}")
                    out.append((number, SSE_STEMS[last_event], span[len("data: "):]))
                elif span.startswith("{"):
                    out.append((number, classify(span, section, column, first_cell, post, number), span))
    return out


def fill(raw, user):
    text = raw.replace("<user>...", "<user>").replace("<user>", json.dumps(user))
    text = re.sub(r'"(\w+)":"(<[^>"]*>|\.\.\.)"', lambda m: f'"{m.group(1)}":{json.dumps(SAMPLES[m.group(1)])}', text)
    text = text.replace("{...}", '{"id":42}')
    text = re.sub(
        r'\{("\w+"(?:,"\w+")*)\}',
        lambda m: "{" + ",".join(f"{n}:{json.dumps(SAMPLES[n.strip(chr(34))])}" for n in m.group(1).split(",")) + "}",
        text,
    )
    return json.loads(text)


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1]).resolve()
    validators = load_validators(root / "schemas")
    failures = []
    counts = {}

    def check(at, stem, frame):
        counts[stem] = counts.get(stem, 0) + 1
        if stem == "user":
            stem, frame = "client-message", {"type": "join", "room": "general", "user": frame}
        errors = sorted(validators[stem].iter_errors(frame), key=lambda e: list(e.path))
        if errors:
            failures.append(f"{at} ({stem}): {json.dumps(frame)}: {errors[0].message}")

    # 1. Conformance sessions.
    sessions = 0
    for folder in ("conformance/sessions", "conformance/sessions-auth", "conformance/tests/sessions"):
        files = sorted((root / folder).glob("*.jsonl"))
        if not files:
            sys.exit(f"no sessions in {root / folder}")
        for path in files:
            sessions += 1
            for at, stem, frame in session_frames(path):
                check(at, stem, frame)
    recorded = sum(counts.values())

    # 2. WIRE.md.
    wire = Path(os.environ.get("HERALD_WIRE_MD", root.parent / "shared" / "WIRE.md"))
    if not wire.is_file():
        sys.exit(f"the wire contract is missing: {wire} (set HERALD_WIRE_MD)")
    examples = wire_examples(wire.read_text(encoding="utf-8"))
    seen = set()
    for number, stem, raw in examples:
        for user in ("JohnDoe", {"id": "user123", "name": "John Doe", "avatar": "https://example.com/a.png"}):
            frame = fill(raw, user)
            at = f"WIRE.md:{number}"
            check(at, stem, frame)
            if stem in ("client-message", "server-message"):
                seen.add((stem, frame["type"]))
            if stem == "server-message":
                for extra in CAPABILITY_FIELDS.get(frame["type"], []):
                    assert not set(extra) & set(frame), f"{at}: {extra} is core already"
                    check(at + " +capabilities", stem, {**frame, **extra})
    missing = {("client-message", t) for t in CLIENT_TYPES} | {("server-message", t) for t in SERVER_TYPES}
    missing -= seen
    if missing:
        failures.append(f"WIRE.md: no example found for {sorted(missing)}")

    # 3. Frames that must be refused.
    for stem, frame in [
        ("server-message", {"type": "chat", "id": "m", "user": "u", "text": "t", "timestamp": TS, "room": "g", "priority": 1}),
        ("server-message", {"type": "user_joined", "user": "u"}),
        ("server-message", {"type": "welcome", "clientId": "c", "capabilities": ["Not A Name"]}),
        ("client-message", {"type": "join", "room": "a b", "user": "u"}),
        ("client-message", {"type": "join", "room": "g", "user": {"id": "u", "name": "A", **{f"f{i}": i for i in range(31)}}}),
        ("sse-ping", {"timestamp": "yesterday"}),
    ]:
        if validators[stem].is_valid(frame):
            failures.append(f"accepted a frame that must be refused ({stem}): {json.dumps(frame)}")

    if failures:
        print(f"{len(failures)} failures:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    if recorded < 300 or len(examples) < 20:
        sys.exit(f"too few frames found ({recorded} recorded, {len(examples)} WIRE.md examples)")
    print(
        f"python jsonschema: {recorded} frames from {sessions} conformance sessions and "
        f"{len(examples)} WIRE.md examples validate against {len(validators)} schemas"
    )


if __name__ == "__main__":
    main()
