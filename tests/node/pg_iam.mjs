// Connects to a PostgreSQL endpoint the way an app on RDS does: a token from @aws-sdk/rds-signer
// and node `pg` with TLS verified against the CA bundle.
//
// Usage: node pg_iam.mjs   with env HOST (RDS-style name: signed and verified), ADDRESS (where it
// listens), PORT, DBUSER, CA, REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and optionally
// PASSWORD (used instead of a token).
// Prints JSON: {"ok": true, "user": current_user} or {"ok": false, "code", "message"}.
import { passwordFromEnv } from "./iam_password.mjs";
import pg from "pg";
import { readFileSync } from "node:fs";

const env = process.env;
const port = Number(env.PORT);
const password = await passwordFromEnv(env, port);
const client = new pg.Client({
  host: env.ADDRESS,
  port,
  user: env.DBUSER,
  password,
  database: "app",
  ssl: { ca: readFileSync(env.CA), servername: env.HOST },
});
try {
  await client.connect();
  const res = await client.query("SELECT current_user AS u");
  await client.end();
  console.log(JSON.stringify({ ok: true, user: res.rows[0].u }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }));
}
