// Connects to a MySQL endpoint the way an app on RDS does: a token from @aws-sdk/rds-signer,
// node `mysql2` with TLS (the CA bundle) and `enableCleartextPlugin: true`.
//
// Usage: node mysql2_iam.mjs   with env HOST, PORT, DBUSER, CA, REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, and optionally PASSWORD (use it instead of a token).
// Prints JSON: {"ok": true, "user": CURRENT_USER()} or {"ok": false, "errno", "sqlState", "message"}.
import { passwordFromEnv } from "./iam_password.mjs";
import mysql from "mysql2/promise";
import { readFileSync } from "node:fs";

const env = process.env;
const port = Number(env.PORT);
const password = await passwordFromEnv(env, port);
try {
  const conn = await mysql.createConnection({
    host: env.HOST,
    port,
    user: env.DBUSER,
    password,
    ssl: { ca: readFileSync(env.CA) },
    enableCleartextPlugin: true,
  });
  const [rows] = await conn.query("SELECT CURRENT_USER() AS u");
  await conn.end();
  console.log(JSON.stringify({ ok: true, user: rows[0].u }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, errno: err.errno, sqlState: err.sqlState,
                               message: err.sqlMessage ?? err.message }));
}
