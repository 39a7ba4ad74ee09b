// Microsoft's own workload-identity client against meridian's token service: the credential
// reads a meridian-minted federated token file, exchanges it at meridian's token endpoint over
// HTTPS (NODE_EXTRA_CA_CERTS trusts the local CA), and the access token it gets is then used
// on the control plane API. Driven by tests/integration/identity_test.cc, which sets:
//   AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST,
//   MERIDIAN_URL (https://127.0.0.1:PORT), MERIDIAN_API_PATH (what the workload may read: its
//   own job).
import { WorkloadIdentityCredential } from "@azure/identity";
import https from "node:https";

const env = process.env;
const credential = new WorkloadIdentityCredential({
  tenantId: env.AZURE_TENANT_ID,
  clientId: env.AZURE_CLIENT_ID,
  tokenFilePath: env.AZURE_FEDERATED_TOKEN_FILE,
  authorityHost: env.AZURE_AUTHORITY_HOST,
  disableInstanceDiscovery: true,
});

function get(url, token) {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { headers: { authorization: `Bearer ${token}` } }, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode, body }));
    });
    request.on("error", reject);
  });
}

try {
  const token = await credential.getToken("api://meridian/.default");
  if (!token || !token.token) throw new Error("no token");
  console.log(`token expires ${new Date(token.expiresOnTimestamp).toISOString()}`);
  const path = env.MERIDIAN_API_PATH || "/api/v1/jobs";
  const answer = await get(`${env.MERIDIAN_URL}${path}`, token.token);
  console.log(`GET ${path} -> ${answer.status}`);
  if (answer.status !== 200) {
    console.error(answer.body);
    process.exit(1);
  }
} catch (error) {
  console.error(`identity_compat: ${error.stack || error}`);
  process.exit(1);
}
