'use strict';
// V8's code cache for the CommonJS modules the app's jsii runtime loads, kept between runs and found by
// the module's content (see infra/jsii_node.py and docs/decisions/0005-scale-and-speed.md).
//
// infra/jsii-node preloads this file (`node --require`) into jsii's runtime and its kernel. Every synth
// compiles about 900 of aws-cdk-lib's and cdk-nag's modules (26 MB of JavaScript, some 0.6 s of the
// runtime's one thread). Node.js has a code cache of its own (NODE_COMPILE_CACHE), but it finds a
// module's entry by the module's path, and jsii loads every package from a new temporary directory
// each run (jsii-kernel-XXXXXX), so it would never find one. Here the entry is found by the SHA-256 of
// the module's source instead, wherever the module lies.
//
// Only the compilation changes. Node's own loader still resolves, wraps and runs every module
// (Module.prototype._compile, with its require, module and exports): it is handed a one-line body that
// calls the function compiled here, from the same source, with the same parameters and file name
// (vm.compileFunction, as Node compiles a module itself), so positions in stack traces are the same.
// V8 checks every entry before it uses one (its version, its flags, the source's length) and compiles
// as usual when it refuses it; the entry is then written again. Anything this does not handle
// (ES modules, TypeScript, source maps turned on, a module that does not compile as CommonJS, a
// Node.js without these APIs, a cache directory it cannot use safely) goes through Node's loader
// untouched.
//
// The cache: $CLOUD_OPS_JSII_CODE_CACHE, else $XDG_CACHE_HOME/cloud-ops/jsii-code-cache, else
// ~/.cache/cloud-ops/jsii-code-cache; one directory per Node.js version and architecture, private to
// the user (this process runs what it finds there). An entry not used for 30 days is removed by a run
// that writes a new one (after an upgrade of aws-cdk-lib). CLOUD_OPS_JSII_CODE_CACHE=off: no cache.

const crypto = require('crypto');
const fs = require('fs');
const Module = require('module');
const os = require('os');
const path = require('path');
const vm = require('vm');

const PARAMETERS = ['exports', 'require', 'module', '__filename', '__dirname'];
const DAY = 24 * 60 * 60 * 1000;
const UNUSED_FOR = 30 * DAY;
const COMPILED = Symbol.for('cloud-ops.jsii-code-cache.compiled');
const BODY = `return globalThis[Symbol.for(${JSON.stringify(COMPILED.description)})](module).call(this, exports, require, module, __filename, __dirname);`;

function cacheDirectory() {
  const setting = process.env.CLOUD_OPS_JSII_CODE_CACHE;
  const root = setting || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cloud-ops', 'jsii-code-cache');
  return path.join(root, `${process.version}-${process.arch}`);
}

// The directory, created private if need be; undefined when it cannot be used safely.
function privateDirectory(directory) {
  try {
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
    const stat = fs.statSync(directory);
    const owned = typeof process.getuid !== 'function' || stat.uid === process.getuid();
    return stat.isDirectory() && owned && (stat.mode & 0o022) === 0 ? directory : undefined;
  } catch {
    return undefined;
  }
}

function write(file, data) {
  const partial = `${file}.${process.pid}.partial`;
  try {
    fs.writeFileSync(partial, data, { mode: 0o600 });
    fs.renameSync(partial, file);
  } catch {
    try { fs.unlinkSync(partial); } catch { /* never written */ }
  }
}

function removeUnused(directory) {
  const now = Date.now();
  for (const name of fs.readdirSync(directory)) {
    const file = path.join(directory, name);
    try {
      if (now - fs.statSync(file).mtimeMs > UNUSED_FOR) fs.unlinkSync(file);
    } catch { /* removed by another run */ }
  }
}

function install() {
  const usable = typeof vm.compileFunction === 'function' && vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  if (process.env.CLOUD_OPS_JSII_CODE_CACHE === 'off' || !usable || process.sourceMapsEnabled) return;
  const directory = privateDirectory(cacheDirectory());
  if (directory === undefined) return;

  const compiled = new WeakMap();
  Object.defineProperty(globalThis, COMPILED, {
    value: (module) => {
      const fn = compiled.get(module);
      compiled.delete(module);
      return fn;
    },
  });
  let pruned = false;
  const compile = Module.prototype._compile;

  Module.prototype._compile = function (content, filename, format) {
    // format: 'commonjs' or undefined (Node.js 22.12 and later, 20), false (22.0 to 22.11: loadAsModule).
    if (![undefined, 'commonjs', false].includes(format) || typeof content !== 'string') {
      return compile.apply(this, arguments);
    }
    const file = path.join(directory, crypto.createHash('sha256').update(content).digest('hex'));
    let cachedData;
    try {
      const { mtimeMs } = fs.statSync(file);
      cachedData = fs.readFileSync(file);
      if (Date.now() - mtimeMs > DAY) fs.utimesSync(file, new Date(), new Date());
    } catch { /* not cached yet */ }
    const options = { filename, importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER };
    let fn;
    try {
      fn = vm.compileFunction(content, PARAMETERS, { ...options, cachedData, produceCachedData: cachedData === undefined });
      if (fn.cachedDataRejected) {
        fn = vm.compileFunction(content, PARAMETERS, { ...options, produceCachedData: true });
      }
    } catch {
      // Not CommonJS (Node.js may load it as an ES module), or an error Node.js reports its own way.
      return compile.apply(this, arguments);
    }
    if (fn.cachedDataProduced) {
      write(file, fn.cachedData);
      if (!pruned) {
        pruned = true;
        try { removeUnused(directory); } catch { /* the next run tries again */ }
      }
    }
    compiled.set(this, fn);
    return compile.call(this, BODY, filename, format);
  };
}

install();
