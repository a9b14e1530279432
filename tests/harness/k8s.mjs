// tests/harness/k8s.mjs: Kubernetes manifests for the specs, through the
// test-only npm packages of package.json (kubernetes-models, yaml).
//   node tests/harness/k8s.mjs validate FILE.yaml...
//     validates every object against the Kubernetes API schemas: prints
//     "FILE: Kind/name: ok", or the first schema error of the object; exit 0
//     when every object is valid, 1 otherwise (unknown apiVersion/kind and
//     YAML errors included)
//   node tests/harness/k8s.mjs json FILE.yaml...
//     prints every object of the files as one JSON array
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const [mode, ...files] = process.argv.slice(2);
const objects = [];
let failed = 0;
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`${file}: YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj != null) objects.push({ file, obj });
  }
}
if (mode === "json") {
  console.log(JSON.stringify(objects.map((o) => o.obj)));
} else if (mode === "validate") {
  for (const { file, obj } of objects) {
    const id = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
    try {
      // "apps/v1" -> kubernetes-models/apps/v1/Deployment, "v1" -> the core group
      const mod = await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
      new mod[obj.kind](obj).validate();
      console.log(`${file}: ${id}: ok`);
    } catch (e) {
      console.log(`${file}: ${id}: ${String(e.message || e).split("\n").slice(0, 3).join(" ")}`);
      failed++;
    }
  }
} else {
  console.log("usage: node k8s.mjs validate|json FILE.yaml...");
  failed++;
}
process.exit(failed ? 1 : 0);
