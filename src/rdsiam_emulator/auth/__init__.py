"""Authentication: from the bytes of an IAM token to one login decision, without any I/O.

``tokens`` (parsing), ``sigv4`` (every canonical string and signature), ``verifier`` (the ordered
checks), ``fast_path`` (the SDK-layout shortcut the verifier tries first), ``credentials`` (the
key lookup seam), ``endpoint_spec`` (the names a token must be bound to), ``throttle``,
``authenticator`` (one instance's rules), ``login`` (the sans-I/O login step every entry point
drives), ``proxy`` (an RDS Proxy's rules and wire texts, consulted by the login step) and
``explain`` (every check's verdict for ``token explain``). Nothing here opens a socket
or imports the CLI.
"""
