"""PostgreSQL frontend/backend protocol v3: codec and the handshake and backend-login machines."""

from rdsiam_emulator.protocols.postgres.backend import (
    BackendLogin,
    LoginFailed,
    LoginSucceeded,
)
from rdsiam_emulator.protocols.postgres.codec import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    PROTOCOL_3_0,
    SSL_REQUEST_CODE,
    ProtocolError,
)
from rdsiam_emulator.protocols.postgres.frontend import (
    CancelRequested,
    FrontendHandshake,
    GSSEncRequested,
    PasswordReceived,
    SSLRequested,
    StartupReceived,
)

__all__ = [
    "CANCEL_REQUEST_CODE",
    "GSSENC_REQUEST_CODE",
    "PROTOCOL_3_0",
    "SSL_REQUEST_CODE",
    "BackendLogin",
    "CancelRequested",
    "FrontendHandshake",
    "GSSEncRequested",
    "LoginFailed",
    "LoginSucceeded",
    "PasswordReceived",
    "ProtocolError",
    "SSLRequested",
    "StartupReceived",
]
