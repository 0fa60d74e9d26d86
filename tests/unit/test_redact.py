from gameday.engine.redact import MASK, redact


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
