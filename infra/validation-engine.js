"use strict";
// CDK's own template validation (aws-cdk-lib's CloudFormationValidatePlugin, default rules) in a
// Node.js process of its own, so that its WebAssembly engine starts on the other core while the jsii
// runtime builds the app (infra/validation_engine.py starts it, infra/validation_proxy.py talks to it).
//
//   node validation-engine.js AWS_CDK_LIB_DIRECTORY VERSION
//
// AWS_CDK_LIB_DIRECTORY is the copy of aws-cdk-lib the jsii runtime itself loads (its package cache);
// VERSION is the version the app's jsii runtime runs, checked against that copy's package.json.
// One JSON line out when the engine is ready: {"name", "version", "ruleIds"}, or {"error"}. Then one
// JSON line in, {"stackTemplates": [...]} as CDK hands it to the plugin (IPolicyValidationContext), and
// one out: {"report"}, the plugin's report as it returned it, or {"error"}. The process stays until
// its input closes (or it is killed: it holds nothing that needs a clean exit).
const fs = require("fs");
const os = require("os");
const path = require("path");

// Below the app's priority: the engine takes the core that Python and the jsii runtime leave idle (they
// take turns while the app is built) rather than slowing their imports and the runtime's load.
try {
  if (os.getPriority() < 10) os.setPriority(10);
} catch {
  // A platform that refuses it: the engine runs at the app's priority.
}

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function describe(error) {
  return error && error.stack ? String(error.stack) : String(error);
}

function start(directory, version) {
  const manifest = JSON.parse(fs.readFileSync(path.join(directory, "package.json"), "utf-8"));
  if (manifest.name !== "aws-cdk-lib" || manifest.version !== version) {
    throw new Error(`${directory} holds ${manifest.name}@${manifest.version}, not aws-cdk-lib@${version}`);
  }
  const module = require(path.join(directory, "core", "lib", "validation", "cloudformation-validate-plugin.js"));
  return new module.CloudFormationValidatePlugin();
}

function main() {
  const [directory, version] = process.argv.slice(2);
  let plugin;
  try {
    plugin = start(directory, version);
    send({ name: plugin.name, version: plugin.version, ruleIds: plugin.ruleIds });
  } catch (error) {
    send({ error: describe(error) });
    return;
  }
  let input = "";
  let answered = false;
  process.stdin.setEncoding("utf-8");
  process.stdin.on("data", (chunk) => {
    input += chunk;
    const end = input.indexOf("\n");
    if (answered || end < 0) return;
    answered = true;
    try {
      const { stackTemplates } = JSON.parse(input.slice(0, end));
      const templatePaths = stackTemplates.map((stack) => stack.templatePath);
      send({ report: plugin.validate({ stackTemplates, templatePaths }) });
    } catch (error) {
      send({ error: describe(error) });
    }
  });
  process.stdin.on("end", () => process.exit(0));
}

main();
