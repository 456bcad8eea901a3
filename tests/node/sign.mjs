// Prints RDS IAM tokens made by the real JavaScript SDK v3 signer (@aws-sdk/rds-signer).
//
// Usage: node sign.mjs '<json>'   (or the JSON on stdin when no argument is given)
// The JSON is one request or a list of requests:
//   {"hostname", "port", "region", "username", "accessKeyId", "secretAccessKey",
//    "sessionToken"?, "at"?: ISO-8601 time to sign at}
// Output: a JSON list of tokens, one per request, in order.
//
// The signer has no clock parameter, so "at" replaces the global Date while signing: a subclass
// whose no-argument constructor and Date.now() report the fixed time. Everything else is the SDK.
import { Signer } from "@aws-sdk/rds-signer";
import { readFileSync } from "node:fs";

const RealDate = globalThis.Date;

function frozenDate(ms) {
  class FrozenDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) {
        super(ms);
      } else {
        super(...args);
      }
    }
    static now() {
      return ms;
    }
  }
  return FrozenDate;
}

async function sign(req) {
  const signer = new Signer({
    hostname: req.hostname,
    port: req.port,
    region: req.region,
    username: req.username,
    credentials: {
      accessKeyId: req.accessKeyId,
      secretAccessKey: req.secretAccessKey,
      ...(req.sessionToken ? { sessionToken: req.sessionToken } : {}),
    },
  });
  if (req.at) {
    const ms = RealDate.parse(req.at);
    if (Number.isNaN(ms)) throw new Error(`bad time ${req.at}`);
    globalThis.Date = frozenDate(ms);
  }
  try {
    return await signer.getAuthToken();
  } finally {
    globalThis.Date = RealDate;
  }
}

const text = process.argv.length > 2 ? process.argv[2] : readFileSync(0, "utf8");
const parsed = JSON.parse(text);
const requests = Array.isArray(parsed) ? parsed : [parsed];
const tokens = [];
for (const req of requests) {
  tokens.push(await sign(req));
}
process.stdout.write(JSON.stringify(tokens) + "\n");
