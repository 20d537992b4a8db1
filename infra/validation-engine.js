"use strict";
// CDK's own template validation (aws-cdk-lib's CloudFormationValidatePlugin, default rules) in a
// Node.js process of its own, so that its WebAssembly engine starts on the core the app leaves idle
// while the jsii runtime builds it (infra/validation_engine.py starts it, infra/validation_proxy.py
// talks to it).
//
//   node validation-engine.js AWS_CDK_LIB_DIRECTORY VERSION
//
// AWS_CDK_LIB_DIRECTORY is the copy of aws-cdk-lib the jsii runtime itself loads (an entry of jsii's
// package cache, complete once jsii has marked it); VERSION is the version the app's jsii runtime
// runs, checked against that copy's package.json. The plugin's module is loaded by its path inside the
// package (aws-cdk-lib exports it only through the jsii runtime): that path is aws-cdk-lib 2.275's,
// which requirements.txt pins and tests/test_validation_engine.py runs.
//
// Each line it writes starts with PREFIX (anything else on its output is not an answer). First, when
// the engine is ready: {"name", "version", "ruleIds"}, or {"error"}. Then it reads one JSON line,
// {"stackTemplates": [...]} as CDK hands them to the plugin (IPolicyValidationContext), and writes
// {"report"}, the plugin's report as it returned it, or {"error"}, and ends. It also ends when its input
// closes, and may be killed at any time: it holds nothing that needs a clean exit.
const fs = require("fs");
const os = require("os");
const path = require("path");

const PREFIX = "cloud-ops-validation-engine ";
const COMPLETE_MARKER = ".jsii-runtime-package-cache";

// Below the app's priority, where nice(1) has not done it already (see infra/validation_engine.py).
try {
  if (os.getPriority() < 10) os.setPriority(10);
} catch {
  // A platform that refuses it: the engine runs at the app's priority.
}

function send(message, then) {
  process.stdout.write(PREFIX + JSON.stringify(message) + "\n", then);
}

function describe(error) {
  return error && error.stack ? String(error.stack) : String(error);
}

function start(directory, version) {
  if (!fs.lstatSync(path.join(directory, COMPLETE_MARKER)).isFile()) {
    throw new Error(`${directory} is not a complete entry of jsii's package cache`);
  }
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
    let answer;
    try {
      const { stackTemplates } = JSON.parse(input.slice(0, end));
      const templatePaths = stackTemplates.map((stack) => stack.templatePath);
      answer = { report: plugin.validate({ stackTemplates, templatePaths }) };
    } catch (error) {
      answer = { error: describe(error) };
    }
    send(answer, () => process.exit(0));
  });
  process.stdin.on("end", () => process.exit(0));
}

main();
