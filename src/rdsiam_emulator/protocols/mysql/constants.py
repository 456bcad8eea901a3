"""Numbers of the MySQL client/server protocol: capability flags, commands, status bits, errors."""

from __future__ import annotations

from enum import IntEnum


class Capability:
    """Capability flags exchanged in the handshake (the low 32 bits), as plain ints.

    Not an ``IntFlag``: every ``caps & Capability.X`` on a received int would go through the enum
    machinery (``IntFlag.__rand__`` builds a member), about 0.2 ms of CPU per login in the endpoint.
    """

    LONG_PASSWORD = 1 << 0
    """MariaDB servers clear this bit to announce MariaDB extended capabilities."""
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25
    ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    QUERY_ATTRIBUTES = 1 << 27
    SSL_VERIFY_SERVER_CERT = 1 << 30


class Command(IntEnum):
    """The first payload byte of a command-phase packet (only the ones the endpoint looks at)."""

    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    PING = 0x0E
    CHANGE_USER = 0x11
    RESET_CONNECTION = 0x1F


SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_AUTOCOMMIT = 0x0002

OK_HEADER = 0x00
EOF_HEADER = 0xFE
AUTH_SWITCH_HEADER = 0xFE
AUTH_MORE_DATA_HEADER = 0x01
ERR_HEADER = 0xFF

NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
SHA256_PASSWORD = "sha256_password"
CLEAR_PASSWORD = "mysql_clear_password"

# caching_sha2_password AuthMoreData status bytes and client requests
SHA2_FAST_AUTH_OK = 0x03
SHA2_PERFORM_FULL_AUTH = 0x04
SHA2_REQUEST_PUBLIC_KEY = 0x02

MAX_PACKET_CHUNK = 0xFFFFFF
"""A payload of exactly this length means "continued in the next packet" (16 MB - 1)."""


class ErrorCode(IntEnum):
    """Server error numbers the endpoint itself sends; the client sees them as a real server's."""

    ER_CON_COUNT_ERROR = 1040
    ER_HANDSHAKE_ERROR = 1043
    ER_ACCESS_DENIED = 1045
    ER_SERVER_SHUTDOWN = 1053
    ER_NET_PACKET_TOO_LARGE = 1153
    ER_NET_PACKETS_OUT_OF_ORDER = 1156
    ER_NOT_SUPPORTED_AUTH_MODE = 1251
    ER_PLUGIN_IS_NOT_LOADED = 1524
