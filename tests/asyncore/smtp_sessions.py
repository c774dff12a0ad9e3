"""Hypothesis strategies for SMTP sessions: command lines (valid, odd and broken), message
bodies ending with the lone dot, whole transactions (so that messages get through), and line
noise; a session is a list of lines, without their CRLF."""

from __future__ import annotations

from hypothesis import strategies as st

VERBS = ["HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP"]
VERBS += ["helo", "Mail", "rcpt", "XFOO", "", " ", "HELO\x00", "MAIL:"]
ARGS = [
    "",
    " ",
    " mx.example",
    " FROM:<a@b.example>",
    " FROM: <a@b.example>",
    " from:<a@b.example>",
    " FROM:<>",
    " FROM:",
    " FROM:a@b.example",
    " FROM:<a@b.example> SIZE=20",
    " FROM:<a@b.example> SIZE=999999999",
    " FROM:<a@b.example> SIZE=x",
    " FROM:<a@b.example> SIZE=",
    " FROM:<a@b.example> BODY=8BITMIME",
    " FROM:<a@b.example> BODY=7BIT",
    " FROM:<a@b.example> BODY=BINARYMIME",
    " FROM:<a@b.example> SMTPUTF8",
    " FROM:<a@b.example> SMTPUTF8=yes",
    " FROM:<a@b.example> X=1 Y",
    " FROM:<ü@b.example> SMTPUTF8",
    " TO:<c@d.example>",
    " TO: <c@d.example>",
    " TO:<@relay.example:c@d.example>",
    " TO:<c@d.example> NOTIFY=NEVER",
    " TO:",
    " TO:c@d.example",
    " TO:<>",
    " MAIL",
    " x" * 300,
]
BODY = ["", ".", "..", "...x", ".x", "Subject: hi", "plain text", "ü ö", "x" * 120, " .", "\x00"]

command_st = st.builds(lambda verb, arg: verb + arg, st.sampled_from(VERBS), st.sampled_from(ARGS))
body_st = st.lists(st.sampled_from(BODY), max_size=6).map(lambda lines: [*lines, "."])
# a whole transaction, most of whose commands are valid, so that messages get through
transaction_st = st.builds(
    lambda greet, mail, rcpts, body: [greet, mail, *rcpts, "DATA", *body],
    st.sampled_from(["EHLO c.example", "HELO c.example", "NOOP"]),
    st.sampled_from([arg for arg in ARGS if arg.startswith(" FROM")]).map("MAIL".__add__),
    st.lists(st.sampled_from([a for a in ARGS if a.startswith(" TO")]).map("RCPT".__add__)),
    body_st,
)
# A session: command lines, message bodies, transactions, and line noise.
line_st = st.one_of(
    command_st.map(lambda line: [line]),
    body_st,
    transaction_st,
    st.text(alphabet="ab .:<>@\r\n\u00fc", max_size=30).map(lambda line: [line]),
)
session_st = st.lists(line_st, max_size=6).map(
    lambda groups: [line for group in groups for line in group]
)
