import io
import json
import logging
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

import pytest

from gameday.config.secret_values import declared_secret_values, leaf_values
from gameday.engine.redact import (
    MASK,
    MIN_SECRET_LEN,
    RedactingFormatter,
    RedactingStream,
    Redactor,
    redact,
    redact_log_handlers,
    redact_text,
    store_url_secrets,
)
from gameday.errors import InputError
from gameday.scheduler.notify import notification_body
from gameday.store._store import _short
from gameday.store._url import mask_password, resolve_store_url, url_secrets

SECRET = "Zq8-hunter2/secret value"


def test_known_values_secret_keys_and_url_passwords_are_masked():
    journal = {
        "output": "connected with hunter2-secret to the cell",
        "configuration": {"api_token": "abc", "url": "postgresql://gd:pa55word@db:5432/x"},
        "steps": [{"dsn": "host=db password=topsecret user=gd"}],
        "count": 3,
    }
    out = redact(journal, ["hunter2-secret"])
    assert out["output"] == f"connected with {MASK} to the cell"
    assert out["configuration"]["api_token"] == MASK
    assert out["configuration"]["url"] == f"postgresql://gd:{MASK}@db:5432/x"
    assert out["steps"][0]["dsn"] == f"host=db password={MASK} user=gd"
    assert out["count"] == 3
    assert "hunter2" not in str(out) and "pa55word" not in str(out) and "topsecret" not in str(out)


def test_keys_that_merely_contain_pass_are_not_secrets():
    assert redact({"passed": 3, "bypass": "x", "password": "p", "db_passwd": "q"}) == {
        "passed": 3, "bypass": "x", "password": "***", "db_passwd": "***"}


@pytest.mark.parametrize("form", [
    SECRET,
    quote(SECRET, safe=""),  # in a URL
    quote_plus(SECRET, safe=""),  # in a form-encoded body
])
def test_a_secret_is_masked_in_each_form_it_takes_in_text(form: str):
    assert redact_text(f"before {form} after", [SECRET]) == f"before {MASK} after"


def test_a_secret_read_with_its_newline_is_masked_without_it():
    assert redact_text("token value-1234 used", ["value-1234\n"]) == f"token {MASK} used"


def test_a_secret_is_masked_json_and_html_escaped():
    tricky = 'p<"w>&d-1234'
    assert redact_text(json.dumps({"k": tricky}), [tricky]) == json.dumps({"k": MASK})
    assert redact_text("<td>p&lt;&quot;w&gt;&amp;d-1234</td>", [tricky]) == f"<td>{MASK}</td>"


def test_values_shorter_than_the_minimum_are_left_alone():
    # Masking every "abc" would garble text and show the value by where the masks fall.
    assert MIN_SECRET_LEN == 4
    assert redact_text("abc abcd", ["abc"]) == "abc abcd"
    assert redact_text("abc abcd", ["abcd"]) == f"abc {MASK}"


def test_a_longer_secret_containing_a_shorter_one_is_masked_whole():
    assert redact_text("key=token-1234-extra", ["token-1234", "token-1234-extra"]) == f"key={MASK}"


def test_an_unescaped_at_in_a_url_password_leaves_no_tail():
    text = "could not connect to postgresql://gd:Pg@Secret-Tail@db:5432/x: refused"
    out = redact_text(text, [])
    assert "Secret-Tail" not in out and "Pg" not in out
    assert out == f"could not connect to postgresql://gd:{MASK}@db:5432/x: refused"


def test_a_redactor_learns_secrets_later():
    redactor = Redactor(["first-secret"])
    assert redactor.text("first-secret second-secret") == f"{MASK} second-secret"
    redactor.add(["second-secret", "", "ab"])
    assert redactor.text("first-secret second-secret ab") == f"{MASK} {MASK} ab"
    assert redactor.value({"a": ["second-secret", 3]}) == {"a": [MASK, 3]}


def _record_with_exception(message: str, *args: object) -> logging.LogRecord:
    try:
        raise ValueError(f"probe refused {SECRET}")
    except ValueError:
        import sys

        return logging.LogRecord("chaostoolkit", logging.ERROR, __file__, 1, message, args,
                                 sys.exc_info())


def test_the_formatter_masks_message_arguments_and_exception_text():
    formatter = RedactingFormatter(logging.Formatter("%(levelname)s %(message)s"), Redactor([SECRET]))
    record = _record_with_exception("  => failed: %s", f"ValueError: {SECRET}")
    text = formatter.format(record)
    assert SECRET not in text
    assert text.startswith(f"ERROR   => failed: ValueError: {MASK}")
    assert f"ValueError: probe refused {MASK}" in text  # the traceback's last line


def test_redact_log_handlers_wraps_every_handler_once():
    logger = logging.getLogger("test_redact.handlers")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redactor = Redactor([SECRET])
        redact_log_handlers(redactor, logger)
        redact_log_handlers(redactor, logger)
        assert isinstance(handler.formatter, RedactingFormatter)
        assert not isinstance(handler.formatter.inner, RedactingFormatter)
        logger.warning("Running experiment: drill %s", SECRET)
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == f"Running experiment: drill {MASK}\n"


def test_the_stream_masks_a_secret_written_in_pieces_and_passes_on_partial_lines():
    inner = io.StringIO()
    stream = RedactingStream(inner, Redactor([SECRET]))
    stream.write("Traceback: " + SECRET[:5])
    assert inner.getvalue() == ""  # held until the line is whole
    stream.write(SECRET[5:] + "\nnext ")
    assert inner.getvalue() == f"Traceback: {MASK}\n"
    stream.write(SECRET)
    stream.flush()
    assert inner.getvalue() == f"Traceback: {MASK}\nnext {MASK}"


def test_declared_secret_values_reads_inline_env_nested_and_numbers_not_vault():
    secrets = {
        "payments": {"token": "inline-token", "pin": 12345678, "flag": True},
        "db": {"password": {"type": "env", "key": "GD_TEST_DB_PASSWORD"},
               "missing": {"type": "env", "key": "GD_TEST_UNSET", "default": "the-default"}},
        "vault": {"key": {"type": "vault", "path": "secret/x"}},
        "nested": {"deeper": {"api": "nested-value"}},
    }
    environ = {"GD_TEST_DB_PASSWORD": "from-the-env"}
    assert declared_secret_values(secrets, environ) == (
        "inline-token", "12345678", "from-the-env", "the-default", "nested-value")
    assert declared_secret_values(None, environ) == ()
    # What chaoslib resolved (Vault included): every scalar.
    assert leaf_values({"vault": {"key": "from-vault"}, "db": {"password": "from-the-env"}}) == (
        "from-vault", "from-the-env")


ESCAPED = "postgresql://gd:Pg%40Secret-Tail@127.0.0.1:5432/db"
UNESCAPED = "postgresql://gd:Pg@Secret-Tail@127.0.0.1:5432/db"


def test_url_secrets_gives_the_password_as_written_and_decoded():
    assert set(url_secrets(ESCAPED)) >= {"Pg@Secret-Tail", "Pg%40Secret-Tail"}
    assert "Pg@Secret-Tail" in url_secrets(UNESCAPED)
    assert "topsecret" in url_secrets("postgresql://db/x?password=topsecret")
    assert store_url_secrets("sqlite:///.gameday/gameday.db") == ()
    assert store_url_secrets(None) == ()
    text = redact_text(f"{ESCAPED} Pg@Secret-Tail", store_url_secrets(ESCAPED))
    assert "Secret-Tail" not in text


@pytest.mark.parametrize("url", [
    UNESCAPED,
    "postgresql://gd:Pg@Sec/ret-Tail@127.0.0.1:5432/db",
    "postgresql://gd:Pg@Sec?ret-Tail@127.0.0.1:5432/db",
])
def test_an_unescaped_at_in_the_store_password_is_refused_before_connecting(url: str):
    with pytest.raises(InputError) as caught:
        resolve_store_url(url)
    message = caught.value.message()
    assert "%40" in message
    assert "ret-Tail" not in message and "Pg@" not in message


def test_an_escaped_at_and_a_user_with_an_at_are_accepted():
    assert resolve_store_url(ESCAPED) == "postgresql+psycopg" + ESCAPED[len("postgresql"):]
    assert resolve_store_url("postgresql://me@server:pw-1234@127.0.0.1/db")


def test_driver_error_texts_have_the_password_masked():
    password = "Pg@Secret-Tail"
    assert mask_password("auth failed for Pg%40Secret-Tail and Pg@Secret-Tail", password) == \
        "auth failed for *** and ***"
    assert mask_password("abc", "abc") == "abc"
    error = RuntimeError(f'connection to "127.0.0.1" failed: {password}\n(Background on this error)')
    assert _short(error, password) == 'connection to "127.0.0.1" failed: ***'


def test_webhook_payloads_mask_the_secrets_they_were_given():
    body = notification_body("run_failed", {"reason": f"probe refused {SECRET}", "passed": 3},
                             datetime(2026, 3, 7, tzinfo=UTC), Redactor([SECRET]))
    assert SECRET not in json.dumps(body)
    assert body["gameday"]["reason"] == f"probe refused {MASK}"
    assert body["gameday"]["passed"] == 3
