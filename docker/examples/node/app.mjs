// Example app for docker/compose.yaml, in Node: creates its IAM user and policy through the
// emulator's IAM API (AWS_ENDPOINT_URL), looks up its instances with DescribeDBInstances, signs a
// token per connection with @aws-sdk/rds-signer and connects over verified TLS by the RDS-style
// name with pg (PostgreSQL) or mysql2 (MySQL/MariaDB). Exit status 0 when every login succeeded.
import { IAMClient, CreateUserCommand, PutUserPolicyCommand, CreateAccessKeyCommand } from "@aws-sdk/client-iam";
import { RDSClient, DescribeDBInstancesCommand } from "@aws-sdk/client-rds";
import { Signer } from "@aws-sdk/rds-signer";
import pg from "pg";
import mysql from "mysql2/promise";

const api = process.env.AWS_ENDPOINT_URL.replace(/\/$/, "");
const region = process.env.AWS_REGION ?? "eu-west-1";
const app = process.env.APP_NAME ?? "example-node";
const dbUser = process.env.DB_USER ?? "app_user";
const instances = (process.env.INSTANCES ?? "orders,inventory").split(",").filter(Boolean);
const say = (event, fields) => console.log(JSON.stringify({ app, event, ...fields }));

async function waitHealthy(deadlineMs = 180000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const resp = await fetch(`${api}/_rdsiam/health`);
      if (resp.ok) return;
    } catch { /* not listening yet */ }
    if (Date.now() > end) throw new Error(`the emulator was not healthy in ${deadlineMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

await waitHealthy();
const ca = await (await fetch(`${api}/_rdsiam/ca.pem`)).text();
const rds = new RDSClient({ region });
const dbs = [];
for (const id of instances) {
  const out = await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
  dbs.push(out.DBInstances[0]);
}
const account = dbs[0].DBInstanceArn.split(":")[4];
const iam = new IAMClient({ region });
try {
  await iam.send(new CreateUserCommand({ UserName: app }));
} catch (err) {
  if (err.name !== "EntityAlreadyExistsException") throw err;
}
const resources = dbs.map((db) => `arn:aws:rds-db:${region}:${account}:dbuser:${db.DbiResourceId}/${dbUser}`);
await iam.send(new PutUserPolicyCommand({
  UserName: app,
  PolicyName: "db-connect",
  PolicyDocument: JSON.stringify({
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "rds-db:connect", Resource: resources }],
  }),
}));
const key = (await iam.send(new CreateAccessKeyCommand({ UserName: app }))).AccessKey;
const credentials = { accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey };

let failures = 0;
for (const db of dbs) {
  const { Address: host, Port: port } = db.Endpoint;
  const token = await new Signer({ hostname: host, port, username: dbUser, region, credentials }).getAuthToken();
  const ssl = { ca, servername: host, rejectUnauthorized: true };
  try {
    let who;
    if (db.Engine === "postgres") {
      const client = new pg.Client({ host, port, user: dbUser, password: token, database: db.DBName ?? "postgres", ssl });
      await client.connect();
      try {
        who = (await client.query("SELECT current_user AS u")).rows[0].u;
      } finally {
        await client.end();
      }
    } else {
      const conn = await mysql.createConnection({
        host, port, user: dbUser, password: token, ssl, enableCleartextPlugin: true,
      });
      try {
        const [rows] = await conn.query("SELECT CURRENT_USER() AS u");
        who = rows[0].u;
      } finally {
        await conn.end();
      }
    }
    say("connected", { instance: db.DBInstanceIdentifier, host, port, who });
  } catch (err) {
    failures += 1;
    say("refused", { instance: db.DBInstanceIdentifier, host, port, error: String(err.message ?? err) });
  }
}
process.exit(failures ? 1 : 0);
