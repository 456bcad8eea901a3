// The password a node client script logs in with: $PASSWORD when set, else an IAM token for
// HOST:PORT and DBUSER from @aws-sdk/rds-signer with the AWS_* credentials in the environment
// (shared by pg_iam.mjs and mysql2_iam.mjs).
import { Signer } from "@aws-sdk/rds-signer";

export async function passwordFromEnv(env, port) {
  if (env.PASSWORD !== undefined) {
    return env.PASSWORD;
  }
  const signer = new Signer({
    hostname: env.HOST,
    port,
    region: env.REGION,
    username: env.DBUSER,
    credentials: {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    },
  });
  return signer.getAuthToken();
}
