"""Healing a streamed answer: each delta is rewritten as it passes, holding back only the bytes that are ambiguous.

Bytes already sent cannot change, so `StreamHealer.feed(delta)` returns what may be sent now and keeps back the
few bytes whose fate the next ones decide (linear in the stream's length, never re-parsing):
- a comma, until the next non-space character (a closer: it was a trailing comma, and goes);
- a key with its colon, until its value starts (if the stream ends first, the key goes; if a closer comes,
  the model wrote a key with no value, and the healing fails rather than drop it);
- a number or bare word, until its delimiter (`True` becomes `true`, `pending` becomes `"pending"`, and a number
  at the end of a call stopped for length goes with its key: 15 may have been 1500);
- an escape, until it is complete (`\\x41` keeps its backslash as text, a lone surrogate becomes U+FFFD);
- text before the first `{` or `[` (prose, a fence): it is never sent, unless no JSON follows.
Other repairs need no hold: a raw control character inside a string is sent escaped, a missing comma or colon
is inserted, a closer of the wrong kind closes what was left open, text after the document is not sent.
`finish(truncated=...)` then gives the suffix that completes the document: what was held and is kept, a
literal's rest (`tr` → `ue`), the closers. What it cannot heal (single quotes, a comment, a second document)
breaks the healing: from there on the text passes as written, and the status is "failed".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from shared.healing.repair import _JSON_START, _LITERALS, Repair, Status, _fix_number

_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}  # opening → closing
_SPECIAL = {close: re.compile("[" + re.escape(close + '"') + "\\\\\\x00-\\x1f]") for close in _QUOTES.values()}
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$-")
_TOKEN_CHARS = frozenset("-+.0123456789eE") | frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WHOLE_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][\w\-]*")
_NUMBER_START = frozenset("-+.0123456789")
_VALUE_START = frozenset('"{[') | _NUMBER_START
_SIMPLE_ESCAPES = frozenset('"\\/bfnrt')
_HEX = frozenset("0123456789abcdefABCDEF")
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_CLOSE = {"{": "}", "[": "]"}
_OPEN = {"}": "{", "]": "["}
_WS = frozenset(" \t\r\n")
log = logging.getLogger("switchyard.healing")
MAX_PROSE = 2048  # text before the JSON held at most; past it the answer is taken for prose and passes as written


@dataclass(slots=True)
class StreamHealer:
    stack: list[str] = field(default_factory=list)
    state: str = "start"  # start | value | key | colon | after | done | broken
    in_string: bool = False
    string_is_key: bool = False
    close_q: str = '"'  # what closes the string being read (single and curly quotes are sent as ")
    bare_key: bool = False  # an unquoted key being read (sent quoted)
    comment: str = ""  # "/" (maybe a comment), "//" or "/*" (one being skipped), "/**" (maybe its end)
    escape: str = ""  # an escape sequence being read, not sent yet: "\\", "\\u12", "\\ud83d\\u"…
    token: str = ""  # a number or bare word being read, not sent yet
    held: str = ""  # a comma and/or a key with its colon, not sent yet
    held_key: bool = False  # `held` holds a key
    prose: str = ""  # text before the JSON, not sent yet
    opener: str = ""  # `{` or `[` (and the spaces after it) that may start the JSON, not sent yet
    tail: str = ""  # the last characters after the document (to find a second document across deltas)
    repairs: list[Repair] = field(default_factory=list)
    seen: int = 0  # characters fed
    _out: list[str] = field(default_factory=list)

    @property
    def holding(self) -> int:
        """Characters received and not sent yet that may still be sent (prose before the JSON is not counted:
        it is dropped)."""
        return len(self.escape) + len(self.token) + len(self.held) + len(self.opener)

    def feed(self, text: str) -> str:
        """Take the next delta; return what may be sent now. Never raises: a bug here costs the healing (the
        stream then passes as written), never the stream."""
        if self.state == "broken":
            self.seen += len(text)
            return text
        try:
            return self._feed(text)
        except Exception:  # pragma: no cover - a bug
            log.exception("stream healing failed unexpectedly")
            self._out.clear()
            self._break(text)
            return self._flush()

    def _feed(self, text: str) -> str:
        self._out.clear()
        i, n = 0, len(text)
        self.seen += n
        while i < n:
            if self.state == "broken":
                self._out.append(text[i:])
                break
            if self.in_string:
                i, text, n = self._string(text, i, n)
                continue
            c = text[i]
            if self.comment:
                self._comment(c)
                i += 1
                continue
            if self.bare_key:
                if c in _KEY_CHARS:
                    self.held += c
                    i += 1
                    continue
                self.held += '"'
                self.bare_key = False
                self.state = "colon"
                self.note("key_quoted", inserted='"')
            if self.token:
                if c in _TOKEN_CHARS:
                    self.token += c
                    i += 1
                    continue
                self._end_token()
                continue
            i += 1
            if self.state == "start":
                self._start(c)
            elif self.state == "done":
                self._after_document(c)
            elif c in _WS:
                self._emit(c)
            else:
                self._char(c)
        return "".join(self._out)

    # -- output ----------------------------------------------------------------------------------------------
    def _emit(self, s: str) -> None:
        if self.held:
            self.held += s
        else:
            self._out.append(s)

    def _release(self) -> None:
        if self.held:
            self._out.append(self.held)
            self.held, self.held_key = "", False

    def note(self, kind: str, *, inserted: str | None = None, removed: str | None = None) -> None:
        self.repairs.append(Repair(kind, self.seen, "$", inserted, removed))

    def _break(self, rest: str = "") -> None:
        """Something this healer cannot mend: send what it holds and let the rest pass as written."""
        self._out.append(self.prose + self.opener + self.held + self.token + self.escape + rest)
        self.prose = self.opener = self.held = self.token = self.escape = ""
        self.state = "broken"

    # -- before the document ---------------------------------------------------------------------------------
    def _start(self, c: str) -> None:
        if self.opener:
            if c in _WS:
                self.opener += c
                return
            if self.opener[0] == "{":
                starts = c in _QUOTES or c == "}" or c in _KEY_CHARS
            else:
                starts = c in _VALUE_START or c in _QUOTES or c in "]tfnTFN"
            if not starts:  # "see [1] below": a bracket in the prose
                self.prose += self.opener
                self.opener = ""
                self._start(c)
                return
            if self.prose.strip(" \t\r\n"):
                self.note("prose_removed", removed=self.prose)
            else:
                self._out.append(self.prose)  # leading whitespace of the answer: kept
            opener, self.opener, self.prose = self.opener, "", ""
            self.stack.append(opener[0])
            self.state = "key" if opener[0] == "{" else "value"
            self._out.append(opener)
            self._char(c)
            return
        if c in "{[":
            self.opener = c
        elif c in _WS or self.prose.strip(" \t\r\n"):
            self.prose += c
            if len(self.prose) > MAX_PROSE:
                self._break()
        elif c in '"-0123456789':  # a scalar document
            self._out.append(self.prose)
            self.prose, self.state = "", "value"
            self._char(c)
        else:
            self.prose += c

    def _after_document(self, c: str) -> None:
        """Text after the document is not sent; a second document is, and breaks the healing."""
        if c in _WS and not self.tail:
            self._out.append(c)
            return
        if not self.tail:
            self.note("trailing_text_removed")
        self.tail = (self.tail + c)[-64:]
        found = _JSON_START.search(self.tail)
        if found:
            self.note("second_document")
            self._break(self.tail[found.start():])

    # -- structure -------------------------------------------------------------------------------------------
    def _open_string(self, c: str, key: bool) -> None:
        self.in_string, self.string_is_key, self.close_q = True, key, _QUOTES[c]
        if c != '"':
            self.note("quotes_normalized", removed=c, inserted='"')

    def _comment(self, c: str) -> None:
        """Skip a comment between tokens (it is never sent)."""
        mode = self.comment
        if mode == "/":
            if c in "/*":
                self.comment = "/" + c
                self.note("comment_removed")
            else:
                self._break("/" + c)
                self.comment = ""
        elif mode == "//":
            if c == "\n":
                self.comment = ""
                self._emit(c)
        elif c == "/" and mode == "/**":
            self.comment = ""
        else:
            self.comment = "/**" if c == "*" else "/*"

    def _char(self, c: str) -> None:
        s = self.state
        if c == "/":
            self.comment = "/"
        elif c in "]}":
            self._closer(c)
        elif s == "after":
            if c == ",":
                self._release()
                self.held = ","
                self.state = "key" if self.stack[-1] == "{" else "value"
            elif (c in _QUOTES and self.stack[-1] == "{") or (c in _VALUE_START and self.stack[-1] == "["):
                self._release()
                self.held = ","
                self.note("comma_inserted", inserted=",")
                self.state = "key" if self.stack[-1] == "{" else "value"
                self._char(c)
            else:
                self._break(c)
        elif s == "key":
            if c in _QUOTES:
                self.held += '"'
                self.held_key = True
                self._open_string(c, True)
            elif c in _KEY_CHARS:  # an unquoted key: sent quoted, once it ends
                self.held += '"' + c
                self.held_key = self.bare_key = True
            elif c == ",":
                self.note("comma_removed", removed=",")
            else:
                self._break(c)
        elif s == "colon":
            if c == ":":
                self.held += c
                self.state = "value"
            elif c in _VALUE_START or c in _TOKEN_CHARS:
                self.held += ":"
                self.note("colon_inserted", inserted=":")
                self.state = "value"
                self._char(c)
            else:
                self._break(c)
        elif s == "value":
            if c in "{[":
                self._release()
                self._out.append(c)
                self.stack.append(c)
                self.state = "key" if c == "{" else "value"
            elif c in _QUOTES:
                self._release()
                self._out.append('"')
                self._open_string(c, False)
            elif c in _TOKEN_CHARS:
                self.token = c
            elif c == "," and self.stack and self.stack[-1] == "[":
                self.note("comma_removed", removed=",")
            else:
                self._break(c)
        else:
            self._break(c)

    def _closer(self, c: str) -> None:
        if not self.stack or _OPEN[c] not in self.stack:
            self.note("extra_closer_removed", removed=c)
            return
        if self.held_key:  # {"a": 1, "b": }: a key the model wrote, with no value, before the end: not dropped
            self.note("value_removed", removed=self.held)  # (what healing would have had to drop)
            self._break(c)
            return
        while self.stack[-1] != _OPEN[c]:
            self._close_top("closer_inserted")
        self._close_top(None)

    def _close_top(self, repair: str | None) -> None:
        """Close the innermost container, first dropping what a closer makes moot (a trailing comma, a key with
        no value)."""
        if self.held_key:
            self.note("dangling_key_removed", removed=self.held)
            self.held, self.held_key = "", False
        elif self.held:
            self.note("trailing_comma_removed", removed=",")
            self.held = self.held[1:]
            self._release()
        closer = _CLOSE[self.stack.pop()]
        self._out.append(closer)
        if repair:
            self.note(repair, inserted=closer)
        self.state = "after" if self.stack else "done"

    def _end_token(self) -> bool:
        """A number or word has met its delimiter: send it (as JSON) with what was held before it."""
        token, self.token = self.token, ""
        if token in ("...", "\u2026"):  # an ellipsis standing for elided items: it goes
            self.note("ellipsis_removed", removed=token)
            return True
        if token in ("true", "false", "null") or _WHOLE_NUMBER.fullmatch(token):
            value = token
        elif token in _LITERALS:
            value = _LITERALS[token]
            self.note("literal_normalized", removed=token, inserted=value)
        elif token[0] in _NUMBER_START and (fixed := _fix_number(token)) is not None:
            value = fixed
            self.note("number_normalized", removed=token, inserted=value)
        elif _WORD.fullmatch(token) and self.stack:
            value = f'"{token}"'
            self.note("value_quoted", inserted='"')
        else:
            self._break()
            self._out.append(token)
            return False
        self._release()
        self._out.append(value)
        self.state = "after" if self.stack else "done"
        return True

    # -- strings ---------------------------------------------------------------------------------------------
    def _string(self, text: str, i: int, n: int) -> tuple[int, str, int]:
        if self.escape:
            self.escape += text[i]
            done, rest = self._escape_step()
            if rest:  # characters that turned out not to belong to the escape: read them again
                text, i, n = rest + text[i + 1:], -1, len(rest) + n - i - 1
            return i + 1, text, n
        m = _SPECIAL[self.close_q].search(text, i)
        if m is None:
            self._emit(text[i:])
            return n, text, n
        if m.start() > i:
            self._emit(text[i:m.start()])
        c = m.group()
        if c == '"' and self.close_q != '"':
            self._emit('\\"')  # a double quote inside a single-quoted string
        elif c == self.close_q:
            self._emit('"')
            self.in_string = False
            if self.string_is_key:
                self.state = "colon"
            else:
                self._release()
                self.state = "after" if self.stack else "done"
        elif c == "\\":
            self.escape = c
        else:
            self._emit(_CONTROL.get(c) or f"\\u{ord(c):04x}")
            self.note("control_character_escaped")
        return m.end(), text, n

    def _escape_step(self) -> tuple[bool, str]:
        """Advance the escape just extended; (finished, characters to read again)."""
        e = self.escape
        if len(e) == 2:
            if e[1] == "'" and self.close_q != '"':  # \' inside single quotes: the quote itself
                self._emit("'")
                self.escape = ""
                return True, ""
            if e[1] in _SIMPLE_ESCAPES:
                self._emit(e)
                self.escape = ""
                return True, ""
            if e[1] == "u":
                return False, ""
            self._emit("\\\\")  # \x41 → \\x41: the backslash becomes text, what follows is read again
            self.note("escape_fixed", inserted="\\")
            self.escape = ""
            return True, e[1]
        if len(e) <= 6:
            if e[-1] not in _HEX:  # \u12 then something else: the backslash becomes text
                self._emit("\\\\" + e[1:-1])
                self.note("escape_fixed", inserted="\\")
                self.escape = ""
                return True, e[-1]
            if len(e) < 6:
                return False, ""
            code = int(e[2:6], 16)
            if not 0xD800 <= code <= 0xDFFF:
                self._emit(e)
                self.escape = ""
                return True, ""
            if code >= 0xDC00:
                return self._lone_surrogate("")
            return False, ""
        # a high surrogate, then (we hope) \uDC00-\uDFFF
        want = "\\u"
        k = len(e) - 7
        ch = e[-1]
        ok = ch == want[k] if k < 2 else (ch in "dD" if k == 2 else ch in "cdefCDEF" if k == 3 else ch in _HEX)
        if not ok:
            return self._lone_surrogate(e[6:])
        if len(e) == 12:
            self._emit(e)
            self.escape = ""
            return True, ""
        return False, ""

    def _lone_surrogate(self, rest: str) -> tuple[bool, str]:
        self.note("lone_surrogate_replaced", removed=self.escape[:6], inserted="\\ufffd")
        self._emit("\\ufffd")
        self.escape = ""
        return True, rest

    # -- the end ---------------------------------------------------------------------------------------------
    def finish(self, *, truncated: bool) -> tuple[str, Status, list[Repair]]:
        """(suffix to append, status, repairs) once the stream has ended; `truncated`: stopped for length."""
        try:
            return self._finish(truncated)
        except Exception:  # pragma: no cover - a bug
            log.exception("stream healing failed unexpectedly")
            self._out.clear()
            self._break()
            return self._flush(), "failed", self.repairs

    def _finish(self, truncated: bool) -> tuple[str, Status, list[Repair]]:
        self._out.clear()
        if self.state == "broken":
            return self._flush(), "failed", self.repairs
        if self.state == "start" and self.opener:  # "{" and nothing after it yet: the document has started
            if self.prose.strip(" \t\r\n"):
                self.note("prose_removed", removed=self.prose)
            else:
                self._out.append(self.prose)
            self.stack.append(self.opener[0])
            self._out.append(self.opener)
            self.prose = self.opener = ""
            self.state = "value"
        if self.state == "start":
            text = self.prose + self.opener
            self.prose = self.opener = ""
            if not text.strip(" \t\r\n"):
                return text, "skipped", self.repairs
            if text.strip(" \t\r\n") in ("true", "false", "null"):
                return text, "skipped", self.repairs
            return text, "failed", self.repairs  # prose with no JSON after it: sent as written
        if self.in_string:
            if self.escape:
                self.note("truncation_closed", removed=self.escape)
                self.escape = ""
            self._emit('"')
            self.in_string = False
            self.note("truncation_closed", inserted='"')
            self.state = "colon" if self.string_is_key else ("after" if self.stack else "done")
            if not self.string_is_key:
                self._release()
        elif self.token and not self._finish_token(truncated):
            return self._flush(), "failed", self.repairs
        if self.stack:
            closers = "".join(_CLOSE[c] for c in reversed(self.stack))
            while self.stack:
                self._close_top(None)
            self.note("truncation_closed", inserted=closers)
        if not self.repairs:
            return self._flush(), "skipped", self.repairs
        return self._flush(), "healed", self.repairs

    def _finish_token(self, truncated: bool) -> bool:
        token = self.token
        literal = next((lit for lit in ("true", "false", "null") if lit.startswith(token)), None)
        if literal and literal != token:
            self.token = ""
            self._release()
            self._out.append(literal)
            self.note("literal_completed", inserted=literal[len(token):])
            self.state = "after" if self.stack else "done"
            return True
        if truncated and token[0] in _NUMBER_START:
            self.token = ""
            self.note("truncated_number_removed", removed=self.held + token)
            self.held, self.held_key = "", False
            if not self.stack:
                return False
            self.state = "after" if self.stack else "done"
            return True
        return self._end_token()

    def _flush(self) -> str:
        out = "".join(self._out)
        self._out.clear()
        return out
