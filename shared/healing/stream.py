"""Healing a streamed answer by appending only.

Bytes already sent cannot change, so `StreamHealer` follows the JSON state as deltas pass (linear in their
total length, never re-parsing) and, when the stream ends, offers the one suffix that completes the document:
close an open string, finish a literal cut short (`tr` → `ue`), close open containers. What cannot be healed
after bytes were sent, reported honestly as "failed" with nothing appended:
- anything that needs removing: prose or a fence before the JSON, a trailing comma, a key left without a
  value, an invalid token (single quotes, Python literals, comments) mid-stream;
- a number at the very end of a stream that stopped for length (15 may have been 1500), or a string that
  ends inside an escape sequence.
A stream that finished on its own with balanced JSON is "skipped": nothing is appended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.healing.repair import Repair, Status

_SPECIAL = re.compile(r'["\\\x00-\x1f]')
_NUMBER_CHARS = frozenset("-+.0123456789eE")
_LITERALS = ("true", "false", "null")
_WHOLE_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


@dataclass(slots=True)
class StreamHealer:
    stack: list[str] = field(default_factory=list)
    state: str = "start"  # start | value | key | colon | comma_or_end | done | broken
    in_string: bool = False
    string_is_key: bool = False
    escape: str = ""  # the escape sequence being read: "\\", "\\u12"…
    token: str = ""  # a number or literal being read
    after_comma: bool = False  # the last structural character was a comma
    seen: int = 0  # characters fed

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n and self.state != "broken":
            if self.in_string:
                i = self._string(text, i, n)
                continue
            c = text[i]
            if self.token:
                if c in _NUMBER_CHARS or c.isalpha():
                    self.token += c
                    i += 1
                    continue
                if not self._end_token():
                    break
            i += 1
            if c in " \t\r\n":
                continue
            self._char(c)
        self.seen += n

    def _string(self, text: str, i: int, n: int) -> int:
        if self.escape:
            self.escape += text[i]
            if self.escape[1] != "u" or len(self.escape) == 6:
                if self.escape[1] not in '"\\/bfnrtu' or (self.escape[1] == "u" and
                                                          not re.fullmatch(r"\\u[0-9a-fA-F]{4}", self.escape)):
                    self.state = "broken"
                self.escape = ""
            return i + 1
        m = _SPECIAL.search(text, i)
        if m is None:
            return n
        c = m.group()
        if c == '"':
            self.in_string = False
            self.state = "colon" if self.string_is_key else "comma_or_end"
            if not self.stack and not self.string_is_key:
                self.state = "done"
        elif c == "\\":
            self.escape = "\\"
        else:
            self.state = "broken"  # a raw control character: sent already, cannot be escaped now
        return m.end()

    def _end_token(self) -> bool:
        token, self.token = self.token, ""
        if token in _LITERALS or _WHOLE_NUMBER.fullmatch(token):
            self.state = "comma_or_end" if self.stack else "done"
            return True
        self.state = "broken"
        return False

    def _char(self, c: str) -> None:
        s = self.state
        if s in ("start", "value") or (s == "key" and c in "]}"):
            if c in "{[":
                self.stack.append(c)
                self.state = "key" if c == "{" else "value"
                self.after_comma = False
            elif c == '"':
                self.in_string, self.string_is_key = True, False
                self.state = "value"
            elif c in _NUMBER_CHARS or c.isalpha():
                self.token = c
            elif c in "]}" and s != "start" and self._closes_empty(c):
                self._close(c)
            else:
                self.state = "broken"
        elif s == "key":
            if c == '"':
                self.in_string, self.string_is_key = True, True
            else:
                self.state = "broken"
        elif s == "colon":
            self.state = "value" if c == ":" else "broken"
        elif s == "comma_or_end":
            if c == ",":
                self.state = "key" if self.stack[-1] == "{" else "value"
                self.after_comma = True
            elif c in "]}" and self.stack and {"]": "[", "}": "{"}[c] == self.stack[-1]:
                self._close(c)
            else:
                self.state = "broken"
        else:  # done: text after the document
            self.state = "broken"

    def _closes_empty(self, c: str) -> bool:
        """`{}` / `[]` right after the opener (not after a comma: that would be a trailing comma)."""
        return bool(self.stack) and {"]": "[", "}": "{"}[c] == self.stack[-1] and not self.after_comma

    def _close(self, c: str) -> None:
        self.stack.pop()
        self.after_comma = False
        self.state = "comma_or_end" if self.stack else "done"

    def finish(self, *, truncated: bool) -> tuple[str, Status, list[Repair]]:
        """(suffix to append, status, repairs) once the stream has ended; `truncated`: stopped for length."""
        if self.state == "broken":
            return "", "failed", []
        if self.state == "start" and not self.token:
            return "", "skipped", []  # nothing JSON-like was sent
        suffix = ""
        if self.in_string:
            if self.string_is_key or self.escape:
                return "", "failed", []  # a key would be left without a value / half an escape
            suffix = '"'
        elif self.token:
            literal = next((lit for lit in _LITERALS if lit.startswith(self.token)), None)
            if literal:
                suffix = literal[len(self.token):]
            elif truncated or not _WHOLE_NUMBER.fullmatch(self.token):
                return "", "failed", []  # a number cut by the length limit may have been longer
        elif self.state == "colon" or (self.state in ("key", "value") and self.after_comma) or \
                (self.state == "value" and self.stack and self.stack[-1] == "{"):
            return "", "failed", []  # after a comma, a key or a colon: only removing bytes would help
        if not suffix and not self.stack:
            return "", "skipped", []
        suffix += "".join("}" if c == "{" else "]" for c in reversed(self.stack))
        return suffix, "healed", [Repair("truncation_closed", self.seen, "$", inserted=suffix)]
