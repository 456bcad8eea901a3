"""Copy-paste connection snippets for one emulated instance and DB user (the status page's "how to
connect"): psql / mysql CLI, Python, Node, Java and Go, each minting an IAM token with the
language's AWS SDK and connecting over verified TLS as RDS requires.

Pure: a ``SnippetTarget`` in, ``Snippet`` values out. Every user-controlled value (host, DB user,
database, paths) is quoted for the language it lands in, so a name cannot break out of a literal.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rdsiam_emulator.instances import EmulatedInstance

Engine = Literal["postgres", "mysql"]


@dataclass(frozen=True, slots=True)
class SnippetTarget:
    """What a client needs to reach one instance as one DB user.

    ``host`` is the name tokens are signed for and TLS verifies (the RDS-style endpoint name);
    ``address``, when set, is the IP the endpoint listens on, used by the clients that can connect
    to an address while verifying a name (libpq's ``hostaddr``, node ``pg``'s ``servername``), so
    those snippets work before the name resolves. ``ca_path`` is the CA bundle on this machine;
    ``ca_url`` where to download it (the server's ``/_rdsiam/ca.pem``), if served.
    """

    engine: Engine
    host: str
    port: int
    region: str
    db_user: str
    ca_path: str
    dbname: str | None = None
    address: str | None = None
    ca_url: str | None = None


@dataclass(frozen=True, slots=True)
class Snippet:
    """``key``: ``psql``, ``mysql``, ``python``, ``node``, ``java`` or ``go``; ``filename``: what
    to save ``code`` as (``.sh`` for the CLI ones)."""

    key: str
    title: str
    filename: str
    code: str


def snippets_for(target: SnippetTarget) -> tuple[Snippet, ...]:
    """Every snippet for ``target``, CLI first. Raises ``ValueError`` for an unknown engine or a
    port outside 1..65535."""
    if target.engine not in ("postgres", "mysql"):
        raise ValueError(f"engine must be 'postgres' or 'mysql', got {target.engine!r}")
    if not 0 < target.port < 65536:
        raise ValueError(f"port must be 1..65535, got {target.port}")
    if target.engine == "postgres":
        return (_psql(target), _python_pg(target), _node_pg(target), _java_pg(target),
                _go_pg(target))
    return (_mysql_cli(target), _python_mysql(target), _node_mysql(target), _java_mysql(target),
            _go_mysql(target))


def target_for(instance: EmulatedInstance, db_user: str, *,
               ca_url: str | None = None) -> SnippetTarget:
    """The target for a running instance: its endpoint name and port, its listen IP (unless the
    name is ``localhost``), its database and the emulator's CA bundle."""
    listen = instance.config.listen_host
    address = None if instance.host.lower() == "localhost" or not _is_ip(listen) else listen
    if address is not None and ipaddress.ip_address(address).is_unspecified:
        address = "127.0.0.1"  # listening on every address: loopback reaches it
    engine: Engine = "postgres" if instance.engine == "postgres" else "mysql"
    return SnippetTarget(
        engine=engine, host=instance.host, port=instance.port, region=instance.region,
        db_user=db_user, ca_path=str(instance.ca_bundle), dbname=instance.backend.dbname or None,
        address=address, ca_url=ca_url,
    )


def _address(t: SnippetTarget) -> str | None:
    """The listen IP when it differs from the host name (nothing to add otherwise)."""
    if t.address is None or t.address == t.host:
        return None
    return t.address


def hosts_line(t: SnippetTarget) -> str | None:
    """The ``/etc/hosts`` line that makes ``t.host`` resolve to its listen IP, when it is a name."""
    address = _address(t)
    if address is None or _is_ip(t.host) or t.host.lower() == "localhost":
        return None
    return f"{address} {t.host}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------- quoting


def _sh(value: str | int) -> str:
    return shlex.quote(str(value))


def _conninfo(value: str) -> str:
    """A libpq keyword/value: bare when plain, else single-quoted with \\ and ' escaped."""
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _js(value: str) -> str:
    """A JavaScript string literal (JSON is a subset; U+2028/9 are escaped by ensure_ascii)."""
    return json.dumps(value)


def _go(value: str) -> str:
    """A Go interpreted string literal (Go accepts JSON's escapes)."""
    return json.dumps(value)


def _java(value: str) -> str:
    """A Java string literal. No ``\\u`` escapes: javac expands them before lexing, so
    ``\\u000a`` would end the line; control characters use octal escapes instead."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _ca_comment(t: SnippetTarget, prefix: str) -> str:
    if t.ca_url is None:
        return ""
    return f"{prefix} CA bundle: {t.ca_path} (or download {t.ca_url})\n"


def _aws_token(t: SnippetTarget) -> str:
    return (f"aws rds generate-db-auth-token --hostname {_sh(t.host)} --port {t.port} "
            f"--region {_sh(t.region)} --username {_sh(t.db_user)}")


# ----------------------------------------------------------------------------------- CLI


def _psql(t: SnippetTarget) -> Snippet:
    parts = [f"host={_conninfo(t.host)}"]
    if (address := _address(t)) is not None:
        parts.append(f"hostaddr={_conninfo(address)}")
    parts += [f"port={t.port}", f"user={_conninfo(t.db_user)}"]
    if t.dbname:
        parts.append(f"dbname={_conninfo(t.dbname)}")
    parts += ["sslmode=verify-full", f"sslrootcert={_conninfo(t.ca_path)}"]
    code = (
        _ca_comment(t, "#")
        + f'export PGPASSWORD="$({_aws_token(t)})"\n'
        + f"psql {_sh(' '.join(parts))}\n"
    )
    return Snippet("psql", "psql", "connect.sh", code)


def _mysql_cli(t: SnippetTarget) -> Snippet:
    db = f" {_sh(t.dbname)}" if t.dbname else ""
    code = (
        _ca_comment(t, "#")
        + f'TOKEN="$({_aws_token(t)})"\n'
        + "# MariaDB's client (Debian's mysql); MySQL 8's client takes --ssl-mode=VERIFY_IDENTITY\n"
        + "# instead of --ssl-verify-server-cert. MariaDB's client calls\n"
        + "# --enable-cleartext-plugin obsolete (a warning only); MySQL's client needs it\n"
        + f"mysql --host={_sh(t.host)} --port={t.port} --user={_sh(t.db_user)} "
        + f'--password="$TOKEN" --ssl-ca={_sh(t.ca_path)} --ssl-verify-server-cert '
        + f"--enable-cleartext-plugin{db}\n"
    )
    return Snippet("mysql", "mysql CLI", "connect.sh", code)


# ----------------------------------------------------------------------------------- Python


def _py_head(t: SnippetTarget, driver: str) -> str:
    return (
        _ca_comment(t, "#")
        + f"import boto3\nimport {driver}\n\n"
        + f"HOST = {t.host!r}\nPORT = {t.port}\nUSER = {t.db_user!r}\n"
        + f"REGION = {t.region!r}\nCA_BUNDLE = {t.ca_path!r}\n\n"
        + "# a fresh token for every new connection: tokens live 15 minutes\n"
        + 'token = boto3.client("rds", region_name=REGION).generate_db_auth_token(\n'
        + "    DBHostname=HOST, Port=PORT, DBUsername=USER, Region=REGION)\n"
    )


def _python_pg(t: SnippetTarget) -> Snippet:
    extra = ""
    if (address := _address(t)) is not None:
        extra += f"    hostaddr={address!r},  # or make HOST resolve to it\n"
    if t.dbname:
        extra += f"    dbname={t.dbname!r},\n"
    code = (
        _py_head(t, "psycopg")
        + "with psycopg.connect(\n    host=HOST, port=PORT, user=USER, password=token,\n"
        + extra
        + '    sslmode="verify-full", sslrootcert=CA_BUNDLE,\n) as conn:\n'
        + '    print(conn.execute("select current_user").fetchone()[0])\n'
    )
    return Snippet("python", "Python (boto3 + psycopg)", "connect.py", code)


def _python_mysql(t: SnippetTarget) -> Snippet:
    db = f"    database={t.dbname!r},\n" if t.dbname else ""
    code = (
        _py_head(t, "pymysql")
        + "# PyMySQL answers RDS's mysql_clear_password request itself (over TLS only)\n"
        + "conn = pymysql.connect(\n    host=HOST, port=PORT, user=USER, password=token,\n"
        + db
        + "    ssl_ca=CA_BUNDLE, ssl_verify_cert=True, ssl_verify_identity=True,\n)\n"
        + "with conn, conn.cursor() as cur:\n"
        + '    cur.execute("SELECT CURRENT_USER()")\n    print(cur.fetchone()[0])\n'
    )
    return Snippet("python", "Python (boto3 + PyMySQL)", "connect.py", code)


# ----------------------------------------------------------------------------------- Node


def _node_head(t: SnippetTarget, package: str, imports: str) -> str:
    return (
        _ca_comment(t, "//")
        + f"// npm install @aws-sdk/rds-signer {package}\n"
        + 'import { Signer } from "@aws-sdk/rds-signer";\n'
        + imports
        + 'import { readFileSync } from "node:fs";\n\n'
        + f"const host = {_js(t.host)};\nconst port = {t.port};\nconst user = {_js(t.db_user)};\n"
        + f"const region = {_js(t.region)};\nconst caBundle = {_js(t.ca_path)};\n\n"
        + "// a fresh token for every new connection: tokens live 15 minutes\n"
        + "const signer = new Signer({ hostname: host, port, username: user, region });\n"
        + "const password = await signer.getAuthToken();\n"
    )


def _node_pg(t: SnippetTarget) -> Snippet:
    address = _address(t)
    target = (f"  host: {_js(address)},  // or make the name resolve to it\n" if address
              else "  host,\n")
    db = f"  database: {_js(t.dbname)},\n" if t.dbname else ""
    code = (
        _node_head(t, "pg", 'import pg from "pg";\n')
        + "const client = new pg.Client({\n" + target
        + "  port,\n  user,\n  password,\n" + db
        + "  ssl: { ca: readFileSync(caBundle), servername: host },  // verified as on RDS\n"
        + "});\nawait client.connect();\n"
        + 'const res = await client.query("select current_user as u");\n'
        + "console.log(res.rows[0].u);\nawait client.end();\n"
    )
    return Snippet("node", "Node (@aws-sdk/rds-signer + pg)", "connect.mjs", code)


def _node_mysql(t: SnippetTarget) -> Snippet:
    db = f"  database: {_js(t.dbname)},\n" if t.dbname else ""
    code = (
        _node_head(t, "mysql2", 'import mysql from "mysql2/promise";\n')
        + "const conn = await mysql.createConnection({\n  host,\n  port,\n  user,\n  password,\n"
        + db
        + "  ssl: { ca: readFileSync(caBundle) },  // verifies the certificate and host name\n"
        + "  enableCleartextPlugin: true,  // RDS asks for the token with mysql_clear_password\n"
        + "});\n"
        + 'const [rows] = await conn.query("SELECT CURRENT_USER() AS u");\n'
        + "console.log(rows[0].u);\nawait conn.end();\n"
    )
    return Snippet("node", "Node (@aws-sdk/rds-signer + mysql2)", "connect.mjs", code)


# ----------------------------------------------------------------------------------- Java


def _java_code(t: SnippetTarget, url: str, props: str, query: str, driver: str) -> str:
    return (
        _ca_comment(t, "//")
        + f"// AWS SDK for Java v2 (software.amazon.awssdk:rds) + {driver}\n"
        + "import java.sql.Connection;\nimport java.sql.DriverManager;\n"
        + "import java.sql.ResultSet;\nimport java.util.Properties;\n"
        + "import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;\n"
        + "import software.amazon.awssdk.regions.Region;\n"
        + "import software.amazon.awssdk.services.rds.RdsUtilities;\n"
        + "import software.amazon.awssdk.services.rds.model.GenerateAuthenticationTokenRequest;\n"
        + "\npublic class Connect {\n"
        + "    public static void main(String[] args) throws Exception {\n"
        + f"        String host = {_java(t.host)};\n        int port = {t.port};\n"
        + f"        String user = {_java(t.db_user)};\n"
        + f"        String caBundle = {_java(t.ca_path)};\n"
        + "        RdsUtilities utilities = RdsUtilities.builder()\n"
        + f"            .region(Region.of({_java(t.region)}))\n"
        + "            .credentialsProvider(DefaultCredentialsProvider.create())\n"
        + "            .build();\n"
        + "        // a fresh token for every new connection: tokens live 15 minutes\n"
        + "        String token = utilities.generateAuthenticationToken(\n"
        + "            GenerateAuthenticationTokenRequest.builder()\n"
        + "                .hostname(host).port(port).username(user).build());\n"
        + "        Properties props = new Properties();\n"
        + '        props.setProperty("user", user);\n'
        + '        props.setProperty("password", token);\n'
        + props
        + f"        String url = {url};\n"
        + "        try (Connection conn = DriverManager.getConnection(url, props);\n"
        + f"             ResultSet rs = conn.createStatement().executeQuery({_java(query)})) {{\n"
        + "            rs.next();\n            System.out.println(rs.getString(1));\n"
        + "        }\n    }\n}\n"
    )


def _java_pg(t: SnippetTarget) -> Snippet:
    db = _java("/" + t.dbname) if t.dbname else '"/"'
    props = ('        props.setProperty("sslmode", "verify-full");\n'
             '        props.setProperty("sslrootcert", caBundle);\n')
    code = _java_code(t, f'"jdbc:postgresql://" + host + ":" + port + {db}', props,
                      "select current_user", "PostgreSQL JDBC (org.postgresql:postgresql)")
    return Snippet("java", "Java (AWS SDK v2 RdsUtilities + pgjdbc)", "Connect.java", code)


def _java_mysql(t: SnippetTarget) -> Snippet:
    db = _java("/" + t.dbname) if t.dbname else '"/"'
    props = ('        props.setProperty("sslMode", "verify-full");\n'
             '        props.setProperty("serverSslCert", caBundle);\n')
    code = _java_code(t, f'"jdbc:mariadb://" + host + ":" + port + {db}', props,
                      "SELECT CURRENT_USER()",
                      "MariaDB Connector/J 3 (org.mariadb.jdbc:mariadb-java-client; it sends the "
                      "token in clear text over TLS when asked)")
    return Snippet("java", "Java (AWS SDK v2 RdsUtilities + MariaDB Connector/J)", "Connect.java",
                   code)


# ----------------------------------------------------------------------------------- Go


def _go_head(t: SnippetTarget) -> str:
    return (
        f"\tconst host = {_go(t.host)}\n\tconst port = {t.port}\n"
        f"\tconst user = {_go(t.db_user)}\n\tconst region = {_go(t.region)}\n"
        f"\tconst caBundle = {_go(t.ca_path)}\n\n"
        "\tctx := context.Background()\n"
        "\tcfg, err := config.LoadDefaultConfig(ctx)\n"
        "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n"
        "\t// a fresh token for every new connection: tokens live 15 minutes\n"
        "\ttoken, err := auth.BuildAuthToken(ctx, fmt.Sprintf(\"%s:%d\", host, port), region, "
        "user, cfg.Credentials)\n"
        "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n"
    )


def _go_pg(t: SnippetTarget) -> Snippet:
    db = f" dbname={_conninfo(t.dbname)}" if t.dbname else ""
    # no hostaddr: pgx would send it to the server as a run-time parameter, so the name must
    # resolve; the password goes into the parsed config, so the token needs no quoting
    dsn = _go(f"host={_conninfo(t.host)} port={t.port} user={_conninfo(t.db_user)}{db} "
              f"sslmode=verify-full sslrootcert={_conninfo(t.ca_path)}")
    code = (
        _ca_comment(t, "//")
        + "package main\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\t\"log\"\n\n"
        + '\t"github.com/aws/aws-sdk-go-v2/config"\n'
        + '\t"github.com/aws/aws-sdk-go-v2/feature/rds/auth"\n'
        + '\t"github.com/jackc/pgx/v5"\n)\n\nfunc main() {\n'
        + _go_head(t)
        + f"\tpgConfig, err := pgx.ParseConfig({dsn})\n"
        + "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n"
        + "\tpgConfig.Password = token\n"
        + "\tconn, err := pgx.ConnectConfig(ctx, pgConfig)\n"
        + "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tdefer conn.Close(ctx)\n"
        + "\tvar who string\n"
        + '\tif err := conn.QueryRow(ctx, "select current_user").Scan(&who); err != nil {\n'
        + "\t\tlog.Fatal(err)\n\t}\n\tfmt.Println(who)\n}\n"
    )
    return Snippet("go", "Go (aws-sdk-go-v2 feature/rds/auth + pgx)", "main.go", code)


def _go_mysql(t: SnippetTarget) -> Snippet:
    db = f"\tmyConfig.DBName = {_go(t.dbname)}\n" if t.dbname else ""
    code = (
        _ca_comment(t, "//")
        + "package main\n\nimport (\n\t\"context\"\n\t\"crypto/tls\"\n\t\"crypto/x509\"\n"
        + '\t"database/sql"\n\t"fmt"\n\t"log"\n\t"os"\n\n'
        + '\t"github.com/aws/aws-sdk-go-v2/config"\n'
        + '\t"github.com/aws/aws-sdk-go-v2/feature/rds/auth"\n'
        + '\t"github.com/go-sql-driver/mysql"\n)\n\nfunc main() {\n'
        + _go_head(t)
        + "\tpem, err := os.ReadFile(caBundle)\n\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n"
        + "\troots := x509.NewCertPool()\n\troots.AppendCertsFromPEM(pem)\n"
        + '\tif err := mysql.RegisterTLSConfig("rds", &tls.Config{RootCAs: roots, '
        + "ServerName: host}); err != nil {\n\t\tlog.Fatal(err)\n\t}\n"
        + "\tmyConfig := mysql.NewConfig()\n"
        + "\tmyConfig.User, myConfig.Passwd = user, token\n"
        + '\tmyConfig.Net, myConfig.Addr = "tcp", fmt.Sprintf("%s:%d", host, port)\n'
        + db
        + '\tmyConfig.TLSConfig = "rds"\n'
        + "\tmyConfig.AllowCleartextPasswords = true // RDS asks for the token in clear text\n"
        + '\tdb, err := sql.Open("mysql", myConfig.FormatDSN())\n'
        + "\tif err != nil {\n\t\tlog.Fatal(err)\n\t}\n\tdefer db.Close()\n"
        + "\tvar who string\n"
        + '\tif err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&who); err != nil {\n'
        + "\t\tlog.Fatal(err)\n\t}\n\tfmt.Println(who)\n}\n"
    )
    return Snippet("go", "Go (aws-sdk-go-v2 feature/rds/auth + go-sql-driver/mysql)", "main.go",
                   code)
