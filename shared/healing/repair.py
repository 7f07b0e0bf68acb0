"""The repair pass: one scan over the input with an explicit stack (no recursion, so no depth limit to hit),
linear in the input's length.

What it repairs, each recorded as a `Repair` (kind, offset in the input, JSON path, what was inserted or
removed): markdown fences and prose around the JSON; comments; single, curly and missing quotes around keys
and values; Python literals (True/False/None); truncated literals; raw control characters, invalid escapes and
lone surrogates inside strings; a BOM; a document escaped twice; missing, leading, doubled and trailing commas;
missing colons; ellipses standing for elided items; missing, extra and mismatched closing brackets, placed by
what follows them (`_place`); truncation anywhere (open strings and containers are closed, a key left without
a value at the end is dropped and said so).

Most of a broken document is not broken: a fast lane (`_fast`) copies whole clean members with one regex each,
and the careful pass takes over where a token needs a look.

What it never does: change the digits of a number or the characters of a string (escapes are only ever made
valid, never decoded), invent a key, or drop anything without a repair entry. Whitespace inside the document is
kept as written, so a repair is the input with the listed edits.

The truncation rule (`heal(text, truncated=...)`, from the call's `finish_reason`): when the input is known to
be cut (`"length"`), a number or bare word at the very end is dropped with its key (15 may have been 1500), and
the repair says `truncated_number_removed` / `truncated_value_removed`. When it is not (the default; `"stop"`),
the model finished and only closers are missing: a complete-looking value at the end is kept. A cut string is
kept as the prefix it is either way. A value the model wrote that has to go without known truncation (a second
document after the first, `1e` with no exponent) fails the healing: the original text comes back, and the
repairs name the `value_removed` / `document_removed` that healing would have needed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal, Sequence

import orjson

Status = Literal["healed", "skipped", "failed"]
log = logging.getLogger("switchyard.healing")


@dataclass(slots=True, unsafe_hash=True)  # not frozen: its __init__ would cost a third of a small repair
class Repair:
    kind: str
    offset: int
    path: str
    inserted: str | None = None
    removed: str | None = None

    def audit(self) -> dict[str, object]:
        """The entry without content (what a usage record may keep when content logging is off)."""
        return {"kind": self.kind, "offset": self.offset, "path": self.path}


@dataclass(slots=True)
class HealResult:
    text: str
    status: Status
    repairs: Sequence[Repair] = ()


class _Repairs(Sequence[Repair]):
    """The repair entries, written out (paths and all) when first read: a caller that only wants the text
    does not pay for the audit."""

    __slots__ = ("_notes", "_entries")

    def __init__(self, notes: list[tuple]) -> None:
        self._notes = notes
        self._entries: list[Repair] | None = None

    def _list(self) -> list[Repair]:
        if self._entries is None:
            self._entries = [Repair(kind, offset, _path(top, count, key), inserted, removed)
                             for kind, offset, top, count, key, inserted, removed in self._notes]
        return self._entries

    def __getitem__(self, index):  # type: ignore[override]
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._notes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return repr(self._list())


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LOOSE_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d*)?")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|jsonc|javascript|js)?[ \t]*\r?\n?(.*?)(?:```|\Z)", re.S)
_WORD = re.compile(r"[A-Za-z_$][\w$\-]*")
_BARE_KEY = re.compile(r"[^\s:,{}\[\]\"']+")
_LITERALS = {"true": "true", "false": "false", "null": "null", "True": "true", "False": "false",
             "None": "null", "undefined": "null", "NaN": "null", "Infinity": "null", "-Infinity": "null"}
_OPEN_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u201d": "\u201d", "\u2019": "\u2019"}
_ESCAPES = set('"\\/bfnrtu')
_HEX = set("0123456789abcdefABCDEF")
_WS = " \t\r\n"
_WS_RUN = re.compile(r"[ \t\r\n]+")
# After a closer that would end the document: a key of the object that must still be open ({"a": 1}, "b": 2}).
_KEY_FOLLOWS = re.compile(r'[ \t\r\n]*,?[ \t\r\n]*"(?:[^"\\\n]|\\.)*"[ \t]*:')
_DOUBLE_ESCAPED = re.compile(r'[{\[]\s*\\"')
_CONTROL_CHARS = frozenset(chr(c) for c in range(32)) - set(_WS)
# The fast lane: tokens that need no care, in the state they are expected in (a string with only valid escapes
# and no surrogate, a strict number or literal followed by a delimiter, a bracket, a comma, a matching closer).
_CLEAN_STRING = r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u(?![dD][89a-fA-F])[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
_FAST_KEY = re.compile(r"([ \t\r\n]*)(" + _CLEAN_STRING + r")([ \t\r\n]*):([ \t\r\n]*)")
_FAST_VALUE = re.compile(r"([ \t\r\n]*)(?:(" + _CLEAN_STRING + r")(?=[ \t\r\n]*[,}\]])"
                         r"|(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[^\w.])|(?:true|false|null)(?=[^\w$\-]))"
                         r"|([{\[]))")
_FAST_AFTER = re.compile(r"([ \t\r\n]*)([,}\]])")
# A whole member at once: [comma] key colon (a scalar followed by a delimiter | an opening bracket).
_SCALAR = _CLEAN_STRING + r"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null"
_FAST_MEMBER = re.compile(r"(?:([ \t\r\n]*,))?[ \t\r\n]*(" + _CLEAN_STRING + r")[ \t\r\n]*:[ \t\r\n]*"
                          r"(?:(" + _SCALAR + r")(?=[ \t\r\n]*[,}\]\"])|([{\[]))")
_FAST_ITEM = re.compile(r"(?:([ \t\r\n]*,))?[ \t\r\n]*(?:(" + _SCALAR + r")(?=[ \t\r\n]*[,}\]\"])|([{\[]))")
# How a valid document can start, by how it ends (a cut one mostly cannot: `{"a": [1, 2` is not tried as JSON).
_CAN_START = {"}": "{", "]": "[", '"': '"', "e": "tf", "l": "n", **dict.fromkeys("0123456789", "-0123456789")}
_SKIP_START = frozenset(_WS) | _CONTROL_CHARS | {"/", "#", "\ufeff"}  # what _skip_ws_and_comments may skip
# Where JSON starts after prose: a brace that opens a member or closes at once, or a bracket that opens a value.
_JSON_START = re.compile(r"\{\s*[\"'\u201c}]|\[\s*[\"'\u201c{\[\]\-0-9tfn]")
_ANY_START = re.compile(r"[{\[]")
MAX_DEPTH = 512  # deeper input fails: no client's JSON parser would take the result anyway


def heal(text: str, *, truncated: bool = False) -> HealResult:
    """Repair `text` into valid JSON if it is not valid already; never raises. `truncated`: the input is known
    to be cut (the call stopped for length), so a number or word at its very end may be incomplete."""
    if not isinstance(text, str):
        return HealResult(text, "failed")
    first, last = text[:1], text[-1:]
    if first in _WS or last in _WS:
        ends = text.strip(" \t\r\n")
        first, last = ends[:1], ends[-1:]
    if first and first in _CAN_START.get(last, ""):
        try:  # what can be valid JSON is tried as such first (and nearly always is)
            orjson.loads(text)
            return HealResult(text, "skipped")
        except orjson.JSONDecodeError:
            pass
    repairer = _Repairer(text, truncated)
    try:
        out, repairs = repairer.run()
    except _Hopeless:
        return HealResult(text, "failed", repairer.repairs())
    except Exception:  # a bug here must cost a healing, never the response  # pragma: no cover
        log.exception("healing failed unexpectedly")
        return HealResult(text, "failed")
    if repairer.lost or not repairer.notes:
        return HealResult(text, "failed", repairs)
    try:  # what the pass wrote is checked by a strict parser before it is offered
        orjson.loads(out)
    except orjson.JSONDecodeError:
        return HealResult(text, "failed", repairs)
    return HealResult(out, "healed", repairs)


class _Hopeless(Exception):
    """No JSON value could be found, or one the model wrote would be lost: the healing fails."""


@dataclass(slots=True)
class _Frame:
    kind: str  # "{" or "["
    slot: str | int | None = None  # where it sits in its parent: the key (a JSON string token) or the index
    parent: _Frame | None = None
    state: str = "start"  # object: start|key|colon|value|after ; array: start|value|after
    key: str | None = None  # the current member's key, as a JSON string token
    key_at: int = 0  # output index where the current member started (to drop a dangling key)
    count: int = 0
    prefix: str | None = None  # its own JSON path, once a repair entry needed it


class _Repairer:
    __slots__ = ("src", "n", "i", "out", "notes", "stack", "truncated", "lost")

    def __init__(self, text: str, truncated: bool) -> None:
        self.src = text
        self.n = len(text)
        self.i = 0
        self.out: list[str] = []
        self.notes: list[tuple[str, int, _Frame | None, int, str | None, str | None, str | None]] = []
        self.stack: list[_Frame] = []
        self.truncated = truncated
        self.lost = False  # a value the model wrote had to go, and truncation is not known: the healing fails

    # -- bookkeeping --------------------------------------------------------------------------------------
    def note(self, kind: str, offset: int, *, inserted: str | None = None, removed: str | None = None) -> None:
        """Record a repair (its path is written out at the end, from the frame it was made in)."""
        top = self.stack[-1] if self.stack else None
        self.notes.append((kind, offset, top, 0 if top is None else top.count, None if top is None else top.key,
                           inserted, removed))

    def repairs(self) -> _Repairs:
        return _Repairs(self.notes)

    def lose(self, kind: str, offset: int, removed: str) -> None:
        """A value the model wrote cannot be kept: reported, and the healing fails (the original comes back)."""
        self.note(kind, offset, removed=removed)
        self.lost = True
        raise _Hopeless  # the healing fails whatever follows: no need to read on

    def _last(self) -> int:
        """The index in `out` of the last token that is not whitespace (-1 if none)."""
        out = self.out
        k = len(out) - 1
        while k >= 0 and out[k].isspace():
            k -= 1
        return k

    # -- the pass -------------------------------------------------------------------------------------------
    def run(self) -> tuple[str, _Repairs]:
        src = self.src
        if not src or src[0] not in "{[" or "`" in src or '\\"' in src:  # else nothing to extract
            self._extract()
        if self.i >= self.n:
            raise _Hopeless
        self._value_or_container()
        self._containers()
        self._after_document()
        return "".join(self.out), self.repairs()

    def _extract(self) -> None:
        """Skip fences and prose before the JSON; narrow the input to a fence's body if there is one."""
        fence = _FENCE.search(self.src) if "`" in self.src else None
        if fence and any(c in fence.group(1) for c in "{["):
            body_start, body_end = fence.start(1), fence.end(1)
            self.note("fence_removed", fence.start(), removed=self.src[:body_start])
            if body_end < self.n:
                self._trailing(body_end, self.src[body_end:], "fence_removed")
            self.src, self.n = self.src[:body_end], body_end
            self.i = body_start
        if self.src[self.i:self.i + 1] == "\ufeff":
            self.note("bom_removed", self.i, removed="\ufeff")
            self.i += 1
        if self.i < self.n and self.src[self.i] in _SKIP_START:
            self._skip_ws_and_comments()
        if '\\"' in self.src:
            self._unwrap_double_escaped()
        start = self.i
        if self.i < self.n and self.src[self.i] not in "{[" and not self._scalar_ahead():
            found = _JSON_START.search(self.src, self.i) or _ANY_START.search(self.src, self.i)
            if found:
                self.i = found.start()
                self.note("prose_removed", start, removed=self.src[start:self.i])

    def _unwrap_double_escaped(self) -> None:
        """A whole document escaped once more ({\\"a\\": 1}, JSON pasted into a string): unescape it, if that
        is all it takes to read it as a string body."""
        if not _DOUBLE_ESCAPED.match(self.src, self.i):
            return
        body = self.src[self.i:].rstrip()
        try:
            inner = orjson.loads('"' + body + '"')
        except orjson.JSONDecodeError:
            return
        self.note("double_escape_removed", self.i, removed=body, inserted=inner)
        self.src, self.n, self.i = inner, len(inner), 0

    def _trailing(self, at: int, rest: str, kind: str) -> None:
        """Text after the document: prose or a fence goes; another JSON document is a value lost."""
        found = _JSON_START.search(rest)
        if found:
            self.lose("document_removed", at + found.start(), rest)
        else:
            self.note(kind, at, removed=rest)

    def _scalar_ahead(self) -> bool:
        """Does the text start with a JSON scalar of its own (then it is the value, not prose)?"""
        c = self.src[self.i]
        if c in "\"'\u201c\u2018-0123456789":
            return True
        word = _WORD.match(self.src, self.i)
        return bool(word) and word.group() in _LITERALS and not self.src[word.end():].strip()

    def _skip_ws_and_comments(self) -> None:
        src, n = self.src, self.n
        while self.i < n:
            c = src[self.i]
            if c in _WS:
                run = _WS_RUN.match(src, self.i)
                assert run is not None
                if self.stack:  # whitespace inside the document is kept as written
                    self.out.append(run.group())
                self.i = run.end()
            elif c in _CONTROL_CHARS or c == "\ufeff":
                self.note("character_removed", self.i, removed=c)
                self.i += 1
            elif c == "/" and self.i + 1 < n and src[self.i + 1] in "/*":
                start = self.i
                if src[self.i + 1] == "/":
                    end = src.find("\n", self.i)
                    self.i = n if end < 0 else end
                else:
                    end = src.find("*/", self.i + 2)
                    self.i = n if end < 0 else end + 2
                self.note("comment_removed", start, removed=src[start:self.i])
            elif c == "#" and self.stack:  # Python/YAML-style comment between members
                start = self.i
                end = src.find("\n", self.i)
                self.i = n if end < 0 else end
                self.note("comment_removed", start, removed=src[start:self.i])
            else:
                return

    def _containers(self) -> None:
        """Advance the innermost container by one token, until the document is closed."""
        stack, src, n = self.stack, self.src, self.n
        while stack:
            self._fast()
            if not stack:
                break
            i = self.i
            if i < n and src[i] in _SKIP_START:
                self._skip_ws_and_comments()
                i = self.i
            if i >= n:
                self._close_at_eof()
                continue
            c = src[i]
            top = stack[-1]
            if c in "}]":
                self._closer(c)
            elif c == ",":
                self._comma(top)
            elif c == ":" and top.kind == "{":
                self._colon(top)
            elif top.kind == "{":
                self._object_token(top)
            else:
                self._array_token(top)

    def _fast(self) -> None:
        """Copy what needs no care, as long as it comes (most of a broken document does): one regex match a
        member (its comma, key, colon and a scalar or opening bracket), no repair possible, so none recorded.
        It stops where the careful pass must look."""
        src, out, stack = self.src, self.out, self.stack
        i, top = self.i, stack[-1]
        while i < self.n:
            state = top.state
            obj = top.kind == "{"
            if state == "after" and src[i] in "}]":  # a closer right after the value (no regex needed)
                if (src[i] == "}") != obj or len(stack) == 1:
                    break  # a closer of the wrong kind, or the last one: the careful pass places it
                out.append(src[i])
                i += 1
                stack.pop()
                top = stack[-1]
                top.state, top.count = "after", top.count + 1
                if top.kind == "{":
                    top.key = None
                continue
            # a member is not read where its key was already read (value) or awaits its colon
            m = None if obj and (state == "value" or state == "colon") else \
                (_FAST_MEMBER if obj else _FAST_ITEM).match(src, i)
            if m is not None:
                if obj:
                    comma, key, _, opener = m.groups()
                else:
                    comma, _, opener = m.groups()
                if comma is not None and state != "after":
                    m = None  # a comma where none is due: the careful pass drops it
                elif comma is None and state == "after":  # {"a": 1 "b": 2}: the comma is missing
                    out.insert(len(out) - (1 if out[-1].isspace() else 0), ",")
                    self.notes.append(("comma_inserted", i, top, top.count, top.key, ",", None))
            if m is not None:
                if obj:
                    top.key = key
                out.append(m.group())
                i = m.end()
                if opener is None:
                    top.state, top.count = "after", top.count + 1
                    if obj:
                        top.key = None
                    continue
                if len(stack) >= MAX_DEPTH:
                    raise _Hopeless
                top.state = "value"
                top = _Frame(opener, key if obj else top.count, top)
                stack.append(top)
                continue
            if state == "after":
                m = _FAST_AFTER.match(src, i)
                if m is None:
                    break
                ws, c = m.groups()
                if c == ",":
                    top.state = "key" if obj else "value"
                elif (c == "}") != obj or len(stack) == 1:
                    break  # a closer of the wrong kind, or the last one: the careful pass places it
                if ws:
                    out.append(ws)
                out.append(c)
                i = m.end()
                if c != ",":
                    stack.pop()
                    top = stack[-1]
                    top.state, top.count = "after", top.count + 1
                    if top.kind == "{":
                        top.key = None
                continue
            if not obj or state not in ("start", "key"):
                break
            m = _FAST_KEY.match(src, i)  # a key whose value needs care: read the key, leave the value
            if m is None:
                break
            ws, key, ws2, ws3 = m.groups()
            if ws:
                out.append(ws)
            top.key_at, top.key, top.state = len(out), key, "value"
            out.append(key)
            if ws2:
                out.append(ws2)
            out.append(":")
            if ws3:
                out.append(ws3)
            i = m.end()
            break
        self.i = i

    # -- containers -----------------------------------------------------------------------------------------
    def _open(self, c: str) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise _Hopeless
        top = self.stack[-1] if self.stack else None
        self.out.append(c)
        self.i += 1
        self.stack.append(_Frame(c, None if top is None else top.key if top.kind == "{" else top.count, top))

    def _closer(self, c: str) -> None:
        want = "{" if c == "}" else "["
        stack = self.stack
        if stack[-1].kind == want:  # the common case: it closes what is open
            if len(stack) == 1 and _KEY_FOLLOWS.match(self.src, self.i + 1):
                self._closer_before_key(c)
            else:
                self._finish_top(self.i, None)
                self.i += 1
            return
        match = next((k for k in range(len(stack) - 2, -1, -1) if stack[k].kind == want), None)
        placed = self._place(match)
        if placed == "swap":  # {"a": [1, 2}, "b": 3}: it was the other kind of closer
            self._finish_top(self.i, "closer_replaced")
        elif placed == "delete" or match is None:
            self.note("extra_closer_removed", self.i, removed=c)
        else:
            while len(stack) - 1 > match:  # close what was left open inside: {"a":[{...}} → {"a":[{...}]}
                self._finish_top(self.i, "closer_inserted")
            self._finish_top(self.i, None)
        self.i += 1

    def _place(self, match: int | None) -> str:
        """A closer of the wrong kind: does it close the frames up to its own kind ("insert"), stand for the
        innermost frame's closer ("swap"), or not belong at all ("delete")? The first reading under which the
        closers right after it match and the token after them fits (a key: an object is open; a value after a
        comma: an array) wins."""
        src, n = self.src, self.n
        j = self.i + 1
        run: list[str] = []
        while j < n and len(run) < 64 and (src[j] in "}] \t\r\n"):
            if src[j] in "}]":
                run.append("{" if src[j] == "}" else "[")
            j += 1
        need = ""  # what the token after the run wants open: "{", "[", "end" or "" (anything)
        if j >= n:
            need = "end"
        elif src[j] == ",":
            need = "{" if _KEY_FOLLOWS.match(src, j) else "["
        kinds = [f.kind for f in self.stack]
        options = ([("insert", kinds[:match])] if match is not None else []) + [
            ("swap", kinds[:-1]), ("delete", kinds)]
        for name, after in options:
            after = list(after)
            for opener in run:
                if not after or after[-1] != opener:
                    break
                after.pop()
            else:
                if need == "end" or (after and (not need or after[-1] == need)):
                    return name
        return "insert"

    def _closer_before_key(self, c: str) -> None:
        """A closer that would end the document, but a key follows: the object that key belongs to stays open.
        {"a": [1}, "b": 2} → {"a": [1], "b": 2};  {"a": 1}, "b": 2} → {"a": 1, "b": 2}."""
        keep = max((k for k, f in enumerate(self.stack) if f.kind == "{"), default=-1)
        if keep < 0 or keep == len(self.stack) - 1:
            self.note("extra_closer_removed", self.i, removed=c)
            self.i += 1
            return
        own = "}" if self.stack[-1].kind == "{" else "]"
        self._finish_top(self.i, None if own == c else "closer_replaced")
        while len(self.stack) - 1 > keep:
            self._finish_top(self.i, "closer_inserted")
        self.i += 1

    def _finish_top(self, offset: int, repair: str | None) -> None:
        top = self.stack[-1]
        if top.state == "colon" or top.state == "value":
            self._drop_dangling(top, offset)
        out = self.out
        if out and (out[-1] == "," or out[-1].isspace()):
            self._drop_trailing_comma(offset)
        closer = "}" if top.kind == "{" else "]"
        out.append(closer)
        if repair:
            self.note(repair, offset, inserted=closer)
        self.stack.pop()
        self._value_done()

    def _drop_dangling(self, top: _Frame, offset: int) -> None:
        """A key with no value goes. At the end of the input that is the cut; before it (`{"a": , "b": 1}`), the
        key is text the model wrote and meant, which no truncation explains: lost, so the healing fails."""
        if top.kind == "{" and top.state in ("colon", "value"):
            removed = "".join(self.out[top.key_at:])
            if self.i < self.n:
                self.lose("value_removed", offset, removed)
            del self.out[top.key_at:]
            self.note("dangling_key_removed", offset, removed=removed)
            top.state = "after" if top.count else "start"

    def _drop_trailing_comma(self, offset: int) -> None:
        last = self._last()
        if last >= 0 and self.out[last] == ",":
            del self.out[last:]  # with the spaces after it: [1, 2, ] → [1, 2]
            self.note("trailing_comma_removed", offset, removed=",")

    def _close_at_eof(self) -> None:
        self._finish_top(self.n, "truncation_closed")

    def _value_done(self) -> None:
        if not self.stack:
            return
        top = self.stack[-1]
        top.state = "after"
        top.count += 1
        if top.kind == "{":
            top.key = None

    def _comma(self, top: _Frame) -> None:
        if top.state == "after":
            self.out.append(",")
            top.state = "key" if top.kind == "{" else "value"
        elif top.kind == "{" and top.state in ("colon", "value"):
            self._drop_dangling(top, self.i)  # {"a", "b": 1} → the key with no value goes
            self.note("comma_removed", self.i, removed=",")
        else:
            self.note("comma_removed", self.i, removed=",")  # leading or doubled
        self.i += 1

    def _colon(self, top: _Frame) -> None:
        if top.state == "colon":
            self.out.append(":")
            top.state = "value"
        else:
            self.note("colon_removed", self.i, removed=":")
        self.i += 1

    def _need_comma(self, top: _Frame) -> None:
        if top.state == "after":
            self.out.insert(self._last() + 1, ",")
            self.note("comma_inserted", self.i, inserted=",")
            top.state = "key" if top.kind == "{" else "value"

    def _object_token(self, top: _Frame) -> None:
        state = top.state
        if (state == "start" or state == "key") and self.src[self.i] in "{[" and len(self.stack) > 1 \
                and self.stack[-2].kind == "[":
            self._finish_top(self.i, "closer_inserted")  # [{"a": 1, {"b": 2}]: a value cannot be a key
            return
        if state == "after":
            self._need_comma(top)
        if top.state in ("start", "key"):
            top.key_at = len(self.out)
            key = self._key()
            if key is None:
                return
            top.key = key
            top.state = "colon"
            return
        if top.state == "colon":  # {"a" 1} → {"a": 1}
            self.out.append(":")
            self.note("colon_inserted", self.i, inserted=":")
            top.state = "value"
        self._value_or_container()

    def _array_token(self, top: _Frame) -> None:
        if self._ellipsis():
            return
        if self._key_ahead() and any(f.kind == "{" for f in self.stack):
            # ["a", "b", "key": 1}: the array should have ended before a key of its parent object
            while self.stack[-1].kind == "[":
                self._finish_top(self.i, "closer_inserted")
            return
        if top.state == "after":
            self._need_comma(top)
        self._value_or_container()

    def _ellipsis(self) -> bool:
        c = self.src[self.i]
        if c == "\u2026" or (c == "." and self.src[self.i:self.i + 3] == "..."):
            token = "..." if c == "." else c
            self.note("ellipsis_removed", self.i, removed=token)
            self.i += len(token)
            return True
        return False

    # -- keys and values ------------------------------------------------------------------------------------
    def _key(self) -> str | None:
        c = self.src[self.i]
        if c in _OPEN_QUOTES:
            start = len(self.out)
            closed = self._string(key=True)
            if not closed:  # a key cut off by the end of the input: drop it
                removed = "".join(self.out[start:])
                del self.out[start:]
                self.note("dangling_key_removed", self.n, removed=removed)
                return None
            return self.out[-1] if len(self.out) > start else '""'
        if self._ellipsis():
            return None
        word = _BARE_KEY.match(self.src, self.i)
        if word is None:
            self.note("character_removed", self.i, removed=c)
            self.i += 1
            return None
        raw = word.group()
        self.i = word.end()
        self.out.append(orjson.dumps(raw).decode())
        self.note("key_quoted", word.start(), inserted='"')
        return self.out[-1]

    def _value_or_container(self) -> None:
        if self.i < self.n and self.src[self.i] in _SKIP_START:
            self._skip_ws_and_comments()
        if self.i >= self.n:
            return
        c = self.src[self.i]
        if c in "{[":
            self._open(c)
            return
        if c in _OPEN_QUOTES:
            self._string()
            if self.stack:  # _value_done, inline: strings are most values
                top = self.stack[-1]
                top.state, top.count = "after", top.count + 1
                if top.kind == "{":
                    top.key = None
            return
        if c in "-+.0123456789":
            at = self.i
            if self._number():
                self._value_done()
                return
            if self.i != at:  # consumed and dropped (cut by the end of the input)
                return
        if self._literal():
            self._value_done()
            return
        self._bare_value()

    def _number(self) -> bool:
        loose = _LOOSE_NUMBER.match(self.src, self.i)
        if loose is None:
            return False
        end_char = self.src[loose.end()] if loose.end() < self.n else ""
        if end_char and (end_char.isalnum() or end_char in "_./-+"):
            return False  # 12abc, 1.2.3, 1/3, 10-20: a bare word, not a number
        raw = loose.group()
        if loose.end() >= self.n and self.truncated:
            # Cut by the end of the input: 15 may have been 1500, 1.01e+1 may have been 1.01e+16. A number is
            # kept only when known to be whole, so this one goes (with its key), and the repair says so.
            self.i = loose.end()
            self.note("truncated_number_removed", loose.start(), removed=raw)
            self._drop_current_member()
            return False
        if _NUMBER.fullmatch(raw):
            self.out.append(raw)  # verbatim, digits and exponent as written
            self.i = loose.end()
            return True
        self.i = loose.end()
        fixed = _fix_number(raw)
        if fixed is None:  # 1e, 1e+: not a number, and no reading of it is sure
            self.lose("value_removed", loose.start(), raw)
            self._drop_current_member()
            return False
        self.out.append(fixed)
        self.note("number_normalized", loose.start(), removed=raw, inserted=fixed)
        return True

    def _drop_current_member(self) -> None:
        """Forget the value being read: in an object its key goes too; in an array, the comma before it."""
        if not self.stack:
            raise _Hopeless
        top = self.stack[-1]
        if top.kind == "{":
            top.state = "value"
            self._drop_dangling(top, self.i)
        else:
            top.state = "after" if top.count else "start"
            last = self._last()
            if last >= 0 and self.out[last] == ",":
                del self.out[last:]

    def _literal(self) -> bool:
        word = _WORD.match(self.src, self.i)
        if self.src[self.i:self.i + 9] == "-Infinity":
            raw = "-Infinity"
        elif word is None:
            return False
        else:
            raw = word.group()
        end = self.i + len(raw)
        if raw in _LITERALS:
            value = _LITERALS[raw]
            self.out.append(value)
            if raw != value:
                self.note("literal_normalized", self.i, removed=raw, inserted=value)
            self.i = end
            return True
        if end >= self.n:  # a literal cut by the end of the input: tr → true
            full = next((lit for lit in ("true", "false", "null") if lit.startswith(raw)), None)
            if full:
                self.out.append(full)
                self.note("literal_completed", self.i, inserted=full[len(raw):])
                self.i = end
                return True
        return False

    def _bare_value(self) -> None:
        """An unquoted value inside a container: quote it up to the next delimiter."""
        if not self.stack:
            raise _Hopeless  # prose with no JSON in it: nothing to heal
        start = self.i
        end = start
        src = self.src
        while end < self.n and src[end] not in ",}]\n\r":
            end += 1
        raw = src[start:end].rstrip()
        if end >= self.n and self.truncated:  # cut by the end of the input: what it would have been is unknown
            self.i = self.n
            self.note("truncated_value_removed", start, removed=src[start:])
            self._drop_current_member()
            return
        if not raw:
            self.note("character_removed", start, removed=src[start])
            self.i = start + 1
            return
        self.i = start + len(raw)
        self.out.append(orjson.dumps(raw).decode())
        self.note("value_quoted", start, inserted='"')
        self._value_done()

    def _string(self, *, key: bool = False) -> bool:
        """Copy a string, making it valid JSON without changing its characters. False if the input ended
        inside it (it is closed all the same)."""
        src, n = self.src, self.n
        open_q = src[self.i]
        close_q = _OPEN_QUOTES[open_q]
        start = self.i
        if open_q != '"':
            self.note("quotes_normalized", start, removed=open_q, inserted='"')
        self.i += 1
        parts: list[str] = ['"']
        seg = self.i
        special = _SPECIALS[close_q]
        while True:
            m = special.search(src, self.i)
            if m is None:
                break
            self.i = m.start()
            c = m.group()
            if c == close_q:
                if close_q == '"' and not key and not self._ends_string():
                    parts.append(src[seg:self.i] + '\\"')  # an unescaped quote inside the text
                    self.note("quote_escaped", self.i, inserted="\\")
                    self.i += 1
                    seg = self.i
                    continue
                parts.append(src[seg:self.i])
                self.i += 1
                parts.append('"')
                self.out.append("".join(parts))
                return True
            if c == "\\":
                parts.append(src[seg:self.i])
                self.i = self._escape(parts, open_q)
                seg = self.i
                continue
            if c == '"':  # a double quote inside a single- or curly-quoted string
                parts.append(src[seg:self.i] + '\\"')
            else:
                parts.append(src[seg:self.i] + _CONTROL.get(c, f"\\u{ord(c):04x}"))
                self.note("control_character_escaped", self.i)
            self.i += 1
            seg = self.i
        self.i = n
        parts.append(src[seg:n])
        text = _trim_partial_escape("".join(parts))
        self.out.append(text + '"')
        self.note("truncation_closed", n, inserted='"')
        return False

    def _key_ahead(self) -> bool:
        """Is the next token a double-quoted string followed by a colon (a key)?"""
        src, n = self.src, self.n
        if self.i >= n or src[self.i] != '"':
            return False
        j = self.i + 1
        while j < n and src[j] != '"':
            j += 2 if src[j] == "\\" else 1
        j += 1
        while j < n and src[j] in " \t":
            j += 1
        return j < n and src[j] == ":"

    def _ends_string(self) -> bool:
        """Is this quote the end of the string? It is when a delimiter (or the end) follows it."""
        j = self.i + 1
        src, n = self.src, self.n
        while j < n and src[j] in " \t":
            j += 1
        if j >= n or src[j] in ",:}]\r\n/":
            return True
        # "a" "b" or "a" {…}: a missing comma; a letter or digit right after it: a quote inside the text
        return not (src[j].isalnum() or src[j] in "'_")

    def _escape(self, parts: list[str], open_q: str) -> int:
        src, i, n = self.src, self.i, self.n
        if i + 1 >= n:
            return n  # a lone backslash at the end: dropped with the truncation
        e = src[i + 1]
        if e == "u":
            digits = src[i + 2:i + 6]
            if len(digits) == 4 and all(ch in _HEX for ch in digits):
                if digits[0] not in "dD" or digits[1] in "01234567":
                    parts.append(src[i:i + 6])
                    return i + 6
                return self._surrogate(parts, i)
            if i + 2 + len(digits) >= n and all(ch in _HEX for ch in digits):
                return n  # cut inside \uXXXX: trimmed at the end
            parts.append("\\\\u")
            self.note("escape_fixed", i, inserted="\\")
            return i + 2
        if e == "'" and open_q != '"':
            parts.append("'")
            return i + 2
        if e in _ESCAPES:
            parts.append(src[i:i + 2])
            return i + 2
        parts.append("\\\\")  # \x41 → \\x41: the backslash becomes text, the characters stay as written
        self.note("escape_fixed", i, inserted="\\")
        return i + 1

    def _surrogate(self, parts: list[str], i: int) -> int:
        """\\uD800-\\uDFFF: valid only as a high-low pair. A lone one has no character to keep (no UTF-8 text can
        hold it, and strict parsers refuse it), so it becomes U+FFFD, as a UTF-8 decoder does with a broken
        sequence; the repair names what it replaced."""
        src, n = self.src, self.n
        high = src[i + 3] in "89abAB"
        pair = _LOW_SURROGATE.match(src, i + 6) if high else None
        if pair:
            parts.append(src[i:i + 12])
            return i + 12
        if high and _PARTIAL_LOW.fullmatch(src, i + 6) and i + 12 > n:
            return n  # cut inside the pair: trimmed with the truncation
        parts.append("\\ufffd")
        self.note("lone_surrogate_replaced", i, removed=src[i:i + 6], inserted="\\ufffd")
        return i + 6

    def _after_document(self) -> None:
        if self.i < self.n and self.src[self.i] in _SKIP_START:
            self._skip_ws_and_comments()
        if not self.out:
            raise _Hopeless
        if self.i < self.n:
            self._trailing(self.i, self.src[self.i:], "trailing_text_removed")


def _path(frame: _Frame | None, count: int, key: str | None) -> str:
    """The JSON path of a value: in `frame`, at index `count` (an array) or under `key` (an object)."""
    if frame is None:
        return "$"
    chain, f = [], frame
    while f is not None and f.prefix is None:
        chain.append(f)
        f = f.parent
    prefix = "$" if f is None else f.prefix
    for g in reversed(chain):
        g.prefix = prefix = "$" if g.parent is None else prefix + _path_step(g.slot)
    if frame.kind == "[":
        return f"{prefix}[{count}]"
    return prefix if key is None else prefix + _path_step(key)


def _path_step(slot: str | int | None) -> str:
    if isinstance(slot, int):
        return f"[{slot}]"
    try:
        return "." + orjson.loads(slot or '""')
    except orjson.JSONDecodeError:  # pragma: no cover - keys are written valid
        return f".{slot}"


def _special(close_q: str) -> re.Pattern[str]:
    """What ends a run of plain string characters: the closing quote, a backslash, a double quote (inside
    other quotes) or a control character."""
    return re.compile("[" + re.escape(close_q + '"') + "\\\\\\x00-\\x1f]")


_SPECIALS = {close_q: _special(close_q) for close_q in set(_OPEN_QUOTES.values())}


_LOW_SURROGATE = re.compile(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_PARTIAL_LOW = re.compile(r"\\?(?:u(?:[dD](?:[c-fC-F][0-9a-fA-F]{0,2})?)?)?")
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_PARTIAL_ESCAPE = re.compile(r"(?:\\u[dD][89abAB][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{0,3}|\\)$")


def _trim_partial_escape(text: str) -> str:
    """A string cut by the end of the input may end in half an escape or half a surrogate pair: drop it."""
    m = _PARTIAL_ESCAPE.search(text)
    if m is None:
        return text
    # an even number of backslashes before it means the backslash is itself escaped text
    before = len(text[:m.start()]) - len(text[:m.start()].rstrip("\\"))
    return text if before % 2 else text[:m.start()]


def _fix_number(raw: str) -> str | None:
    """A whole number written loosely, as JSON with the same value (+1 → 1, .5 → 0.5, 1. → 1, 007 → 7).
    None when it is not a number after all (1e with no exponent digits)."""
    text = raw.lstrip("+")
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    if text.endswith(("e", "E", "e+", "e-", "E+", "E-")):
        return None
    if text.endswith("."):
        text = text[:-1]
    if text.startswith("."):
        text = "0" + text
    mantissa, _, exponent = text.partition("e") if "e" in text else text.partition("E")
    whole, dot, frac = mantissa.partition(".")
    whole = whole.lstrip("0") or "0"
    if not (whole + frac):
        return None
    result = sign + whole + (dot + frac if frac else "") + (("e" + exponent) if exponent else "")
    return result if _NUMBER.fullmatch(result) else None
