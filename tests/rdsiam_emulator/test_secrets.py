from rdsiam_emulator.secrets import derived_password, new_instance_secret


def test_derived_password_is_stable_per_user_and_secret():
    secret = b"k" * 32
    assert derived_password(secret, "app") == derived_password(secret, "app")
    assert derived_password(secret, "app") != derived_password(secret, "App")
    assert derived_password(secret, "app") != derived_password(b"j" * 32, "app")


def test_derived_password_is_sql_literal_safe_and_long():
    pw = derived_password(new_instance_secret(), "o'neil\"; DROP")
    assert len(pw) == 40
    assert all(c.isalnum() or c in "-_" for c in pw)


def test_derived_password_satisfies_password_strength_policies():
    """#17: MySQL's validate_password (MEDIUM/STRONG) wants an upper- and a lower-case letter, a
    digit and a special character in every password."""
    for user in ("app", "x", "iam_user_42", "\u00e9"):
        pw = derived_password(new_instance_secret(), user)
        assert any(c.isupper() for c in pw) and any(c.islower() for c in pw)
        assert any(c.isdigit() for c in pw) and any(not c.isalnum() for c in pw)


def test_instance_secrets_are_random():
    assert new_instance_secret() != new_instance_secret()
