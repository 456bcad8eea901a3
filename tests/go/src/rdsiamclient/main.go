// Command rdsiamclient connects to an emulated RDS endpoint the way a Go application on RDS does:
// a token from the AWS SDK for Go (v1 rdsutils or v2 feature/rds/auth) built from static
// credentials, then lib/pq (sslmode=verify-full) or go-sql-driver/mysql (cleartext over TLS).
//
// Environment: MODE (token|connect), SDK (v1|v2), ENGINE (postgres|mysql), HOST (the RDS-style
// name), ADDRESS (where HOST really is, e.g. 127.0.0.1), PORT, DBUSER, CA (PEM bundle), REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN, and optionally PASSWORD
// (sent instead of a token).
//
// Prints one JSON object: {"token": ...} for MODE=token; for MODE=connect {"ok": true, "user": ...}
// or {"ok": false, "code": ..., "message": ...} (code: SQLSTATE for PostgreSQL, errno for MySQL).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	credsv2 "github.com/aws/aws-sdk-go-v2/credentials"
	authv2 "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	credsv1 "github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/service/rds/rdsutils"
	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

func emit(v interface{}) {
	out, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func buildToken(endpoint string) (string, error) {
	region, user := os.Getenv("REGION"), os.Getenv("DBUSER")
	akid, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	session := os.Getenv("AWS_SESSION_TOKEN")
	switch os.Getenv("SDK") {
	case "v1":
		return rdsutils.BuildAuthToken(endpoint, region, user,
			credsv1.NewStaticCredentials(akid, secret, session))
	case "v2":
		return authv2.BuildAuthToken(context.Background(), endpoint, region, user,
			credsv2.NewStaticCredentialsProvider(akid, secret, session))
	}
	return "", errors.New("SDK must be v1 or v2")
}

// redirect dials ADDRESS whatever host name it is asked for: the certificate names only the
// RDS-style name, which does not resolve here.
func redirect(address string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", net.JoinHostPort(address, port))
	}
}

// redirectDialer is lib/pq's Dialer (it uses DialContext when present); go-sql-driver gets its dial.
type redirectDialer struct {
	dial func(context.Context, string, string) (net.Conn, error)
}

func (d redirectDialer) Dial(network, addr string) (net.Conn, error) {
	return d.dial(context.Background(), network, addr)
}

func (d redirectDialer) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.dial(ctx, network, addr)
}

func (d redirectDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.dial(ctx, network, addr)
}

func openPostgres(host, port, user, password string, dial redirectDialer) (*sql.DB, error) {
	dsn := fmt.Sprintf("host=%s port=%s user=%s password='%s' dbname=app sslmode=verify-full "+
		"sslrootcert='%s' connect_timeout=20", host, port, user, password, os.Getenv("CA"))
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	connector.Dialer(dial)
	return sql.OpenDB(connector), nil
}

func openMysql(host, port, user, password string, dial redirectDialer) (*sql.DB, error) {
	pem, err := os.ReadFile(os.Getenv("CA"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in CA")
	}
	if err := mysql.RegisterTLSConfig("rds", &tls.Config{RootCAs: roots, ServerName: host}); err != nil {
		return nil, err
	}
	mysql.RegisterDialContext("rds", func(ctx context.Context, addr string) (net.Conn, error) {
		return dial.dial(ctx, "tcp", addr)
	})
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = user, password
	cfg.Net, cfg.Addr = "rds", net.JoinHostPort(host, port)
	cfg.TLSConfig = "rds"
	cfg.AllowCleartextPasswords = true
	cfg.Timeout = 20 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
}

func main() {
	host, port, user := os.Getenv("HOST"), os.Getenv("PORT"), os.Getenv("DBUSER")
	password, given := os.LookupEnv("PASSWORD")
	if !given {
		token, err := buildToken(net.JoinHostPort(host, port))
		if err != nil {
			fail(err)
		}
		password = token
	}
	if os.Getenv("MODE") == "token" {
		emit(map[string]string{"token": password})
		return
	}
	dial := redirectDialer{redirect(os.Getenv("ADDRESS"))}
	var db *sql.DB
	var err error
	query := "select current_user"
	if os.Getenv("ENGINE") == "mysql" {
		db, err = openMysql(host, port, user, password, dial)
		query = "SELECT CURRENT_USER()"
	} else {
		db, err = openPostgres(host, port, user, password, dial)
	}
	if err != nil {
		fail(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var current string
	err = db.QueryRowContext(ctx, query).Scan(&current)
	var pqErr *pq.Error
	var myErr *mysql.MySQLError
	switch {
	case err == nil:
		emit(map[string]interface{}{"ok": true, "user": current})
	case errors.As(err, &pqErr):
		emit(map[string]interface{}{"ok": false, "code": string(pqErr.Code), "message": pqErr.Message})
	case errors.As(err, &myErr):
		emit(map[string]interface{}{"ok": false, "code": fmt.Sprint(myErr.Number), "message": myErr.Message})
	default:
		fail(fmt.Errorf("not a server error: %w", err))
	}
}
