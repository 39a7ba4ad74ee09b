// Reads and writes blobs with Microsoft's @azure/storage-blob, so the storage interop test
// (src/storage/fs/interop_test.cc) can check that what a meridian mount writes is what an
// Azure tool sees, and the other way round.
//
//   node blob_interop.mjs ENDPOINT CONTAINER put NAME FILE [--metadata k=v[,k=v]] [--block-bytes N]
//   node blob_interop.mjs ENDPOINT CONTAINER get NAME FILE
//   node blob_interop.mjs ENDPOINT CONTAINER props NAME     -> {"size": N, "metadata": {...}}
//   node blob_interop.mjs ENDPOINT CONTAINER list [PREFIX]  -> ["name", ...]
//
// ENDPOINT is the account URL (Azurite: http://127.0.0.1:PORT/devstoreaccount1). The account
// name and key come from AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_ACCESS_KEY, the variables
// the mount reads too. `--block-bytes N` makes blobs larger than N go up as staged blocks
// plus one Put Block List instead of one Put Blob. Exit status: 0 done, 3 no such blob,
// 2 bad arguments, 1 any other error (message on stderr).
import storageBlob from "@azure/storage-blob";

const { BlobServiceClient, StorageSharedKeyCredential } = storageBlob;

function usage(message) {
  process.stderr.write(`blob_interop: ${message}\n`);
  process.exit(2);
}

function parseMetadata(text) {
  const metadata = {};
  for (const pair of text.split(",")) {
    const equals = pair.indexOf("=");
    if (equals <= 0) usage(`metadata '${pair}' is not key=value`);
    metadata[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return metadata;
}

function parseOptions(args) {
  const options = { metadata: undefined, blockBytes: undefined };
  for (let i = 0; i < args.length; i += 2) {
    if (i + 1 >= args.length) usage(`${args[i]} needs a value`);
    if (args[i] === "--metadata") options.metadata = parseMetadata(args[i + 1]);
    else if (args[i] === "--block-bytes") options.blockBytes = Number(args[i + 1]);
    else usage(`unknown option ${args[i]}`);
  }
  return options;
}

async function main() {
  const [endpoint, containerName, command, ...rest] = process.argv.slice(2);
  if (!endpoint || !containerName || !command) usage("ENDPOINT CONTAINER COMMAND ... expected");
  const account = process.env.AZURE_STORAGE_ACCOUNT;
  const key = process.env.AZURE_STORAGE_ACCESS_KEY;
  if (!account || !key) usage("AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_ACCESS_KEY must be set");
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(account, key));
  const container = service.getContainerClient(containerName);

  if (command === "put") {
    const [name, file, ...optionArgs] = rest;
    if (!name || !file) usage("put NAME FILE expected");
    const options = parseOptions(optionArgs);
    const upload = { metadata: options.metadata };
    if (options.blockBytes !== undefined) {
      upload.maxSingleShotSize = options.blockBytes;
      upload.blockSize = options.blockBytes;
    }
    await container.getBlockBlobClient(name).uploadFile(file, upload);
  } else if (command === "get") {
    const [name, file] = rest;
    if (!name || !file) usage("get NAME FILE expected");
    await container.getBlobClient(name).downloadToFile(file);
  } else if (command === "props") {
    const [name] = rest;
    if (!name) usage("props NAME expected");
    const properties = await container.getBlobClient(name).getProperties();
    const result = { size: properties.contentLength, metadata: properties.metadata ?? {} };
    process.stdout.write(JSON.stringify(result) + "\n");
  } else if (command === "list") {
    const names = [];
    for await (const blob of container.listBlobsFlat({ prefix: rest[0] ?? "" })) {
      names.push(blob.name);
    }
    process.stdout.write(JSON.stringify(names) + "\n");
  } else {
    usage(`unknown command ${command}`);
  }
}

main().catch((error) => {
  const status = error.statusCode ? ` (HTTP ${error.statusCode} ${error.code ?? ""})` : "";
  process.stderr.write(`blob_interop: ${error.message || error}${status}\n`);
  process.exit(error.statusCode === 404 ? 3 : 1);
});
