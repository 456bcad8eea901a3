"""``rdsiam-emulator serve``: config (``config``, ``env``), the HTTP port (``http``, ``routes``,
``rds_api``), the IAM seed (``iam_seed``) and the running instances (``runtime``).
See docs/server.md."""
