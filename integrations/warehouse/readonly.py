"""What a stored warehouse query may be: exactly one read-only SELECT, judged by a real SQL parser.

Staff edit the queue query in the admin, and the warehouse runs it with the portal's credentials,
so the text is checked before it reaches any warehouse — at save time and again at every run:

- it parses, with sqlglot in the configured warehouse's dialect, as exactly one statement
  (comments and one trailing `;` aside);
- that statement is a SELECT, a `WITH … SELECT` or a set operation of SELECTs;
- nothing inside it writes or changes the session: no INSERT/UPDATE/DELETE/MERGE in a CTE, no
  `SELECT … INTO`, no `FOR UPDATE`, no DDL, no SET, no transaction control, and none of the
  functions below that write, sleep, read the server's files, signal other sessions or change
  settings.

The parser is the first wall, not the only one: the adapter also runs the query in a read-only
transaction with a statement timeout on PostgreSQL (through the extended protocol, which the
server itself refuses to give more than one statement) and on a read-only connection on SQLite.
On Databricks the parser is the wall, with the grants README.md lists behind it.
"""

# Reference: https://sqlglot.com/sqlglot.html

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from integrations.http import IntegrationError

VENDOR = "warehouse"

# The adapter's dialect names to sqlglot's.
SQLGLOT_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "databricks": "databricks"}

# Statements and clauses a read can never contain, wherever they sit in the tree: a data-changing
# CTE (`WITH d AS (DELETE … RETURNING *) SELECT …`) parses as a SELECT at the root.
_WRITES: tuple[type[exp.Expr], ...] = (
    exp.DML,  # INSERT, UPDATE, DELETE, MERGE, COPY
    exp.DDL,  # CREATE …
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,  # whatever sqlglot could only keep as text (SET ROLE, DO, EXPLAIN ANALYZE …)
    exp.Set,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
    exp.Grant,
    exp.Revoke,
    exp.Refresh,
    exp.Cache,
    exp.Uncache,
    exp.LoadData,
    exp.Analyze,
    exp.Kill,
    exp.Comment,
    exp.Declare,
    exp.Execute,
    exp.Export,
    exp.Install,
    exp.Into,  # SELECT … INTO new_table creates a table
    exp.Lock,  # FOR UPDATE / FOR SHARE take row locks and need write rights
    exp.NextValueFor,  # advances a sequence
)

# Functions that change data or the session, wait, reach outside the database, or run SQL text of
# their own. Names are compared lower-cased, whatever schema qualifies them.
_FUNCTIONS = frozenset(
    {
        # PostgreSQL
        "set_config", "setseed", "set_limit", "nextval", "setval",
        "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
        "ts_stat", "txid_current", "loread", "lowrite",
        "brin_summarize_new_values", "brin_summarize_range", "brin_desummarize_range", "gin_clean_pending_list",
        # SQLite (the shell's file functions, extensions)
        "load_extension", "fts3_tokenizer", "readfile", "writefile", "edit",
        # Databricks / Spark SQL
        "reflect", "try_reflect", "java_method", "http_request", "secret", "try_secret",
    }
)  # fmt: skip
# pg_sleep, pg_read_file, pg_terminate_backend, pg_advisory_lock, pg_notify, pg_reload_conf…;
# large objects (lo_import, lo_export…); dblink_exec and friends; binary-upgrade internals.
_FUNCTION_PREFIXES = ("pg_", "lo_", "dblink", "binary_upgrade_")

_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery)


def _refused(reason: str) -> IntegrationError:
    return IntegrationError(f"the query is refused: {reason}", permanent=True, vendor=VENDOR)


def _function_name(node: exp.Func) -> str:
    name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
    return str(name or "").strip('"`[]').lower()


def _what(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this or "").upper() or "COMMAND"
    return _CLAUSE_NAMES.get(type(node), node.key.upper())


_CLAUSE_NAMES: dict[type[exp.Expr], str] = {exp.Into: "SELECT … INTO", exp.Lock: "FOR UPDATE / FOR SHARE", exp.NextValueFor: "NEXT VALUE FOR"}


def _forbidden_function(name: str) -> bool:
    return name in _FUNCTIONS or name.startswith(_FUNCTION_PREFIXES)


_WHITESPACE = re.compile(r"\s+")


def read_only_check(sql: str, *, dialect: str) -> None:
    """Raise a permanent IntegrationError unless `sql` is one read-only SELECT in `dialect`
    ("postgresql", "sqlite" or "databricks"); the message says what was found."""
    if dialect not in SQLGLOT_DIALECTS:
        raise _refused(f"no SQL dialect is known for the {dialect!r} warehouse")
    try:
        parsed = sqlglot.parse(sql or "", read=SQLGLOT_DIALECTS[dialect])
    except SqlglotError as exc:
        first_line = _WHITESPACE.sub(" ", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise _refused(f"it is not one {dialect} SELECT statement ({first_line[:200]})") from None
    # An empty statement is what a trailing `;` or a comment after it parses to.
    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise _refused("it is empty")
    if len(statements) > 1:
        raise _refused(f"it holds {len(statements)} statements; a stored query is exactly one SELECT")
    [statement] = statements
    if not isinstance(statement, _QUERY_ROOTS):
        raise _refused(f"it is a {_what(statement)} statement; only SELECT (or WITH … SELECT) may run")
    for node in statement.walk():
        if isinstance(node, _WRITES):
            raise _refused(f"it contains {_what(node)}, which changes data or the session")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _forbidden_function(name):
                raise _refused(f"it calls {name}(), which may change data or the session, wait, or reach outside the warehouse")
