// Connects to an emulated RDS endpoint the way a Java application on RDS does, with a token made
// by the caller (no AWS SDK for Java is packaged in Debian): pgjdbc with sslmode=verify-full, or
// MariaDB Connector/J with TLS that verifies the CA and the host name (the server asks for
// mysql_clear_password, as RDS does).
//
// Usage: java -Djdk.net.hosts.file=HOSTS -cp DRIVERS:. RdsIamClient ENGINE HOST PORT DBUSER CA
// with the password (the token) in the environment variable PASSWORD; HOST must resolve through
// the hosts file. Prints one JSON object: {"ok":true,"user":...} or
// {"ok":false,"code":SQLSTATE,"errno":vendor code,"message":...}.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public final class RdsIamClient {
    private RdsIamClient() {}

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        String engine = args[0], host = args[1], port = args[2], user = args[3], ca = args[4];
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", System.getenv("PASSWORD"));
        String url;
        String query;
        if (engine.equals("mysql")) {
            url = "jdbc:mariadb://" + host + ":" + port + "/";
            props.setProperty("useSsl", "true");
            props.setProperty("trustServerCertificate", "false");
            props.setProperty("serverSslCert", ca);
            props.setProperty("connectTimeout", "20000");
            query = "SELECT CURRENT_USER()";
        } else {
            url = "jdbc:postgresql://" + host + ":" + port + "/app";
            props.setProperty("sslmode", "verify-full");
            props.setProperty("sslrootcert", ca);
            props.setProperty("connectTimeout", "20");
            query = "select current_user";
        }
        try (Connection conn = DriverManager.getConnection(url, props);
             Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery(query)) {
            rs.next();
            System.out.println("{\"ok\":true,\"user\":" + quote(rs.getString(1)) + "}");
        } catch (SQLException e) {
            String message = e.getMessage();
            if (e instanceof org.postgresql.util.PSQLException) {
                org.postgresql.util.ServerErrorMessage server =
                    ((org.postgresql.util.PSQLException) e).getServerErrorMessage();
                if (server != null) {
                    message = server.getMessage();
                }
            }
            System.out.println("{\"ok\":false,\"code\":" + quote(String.valueOf(e.getSQLState()))
                + ",\"errno\":" + e.getErrorCode() + ",\"message\":" + quote(message) + "}");
        }
    }
}
