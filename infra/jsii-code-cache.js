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
// (vm.compileFunction, as Node compiles a module itself), so positions in stack traces are the same;
// a stack trace taken while a module's top level runs shows two frames more (the one-line body's and
// this file's _compile). V8 checks every entry before it uses one (its version, its flags, the
// source's length) and compiles as usual when it refuses it; the entry is then written again.
// Everything else goes through Node's loader untouched: ES modules, TypeScript, a source with a
// dynamic import(), a module that does not compile as CommonJS, source maps or coverage turned on, a
// patched module wrapper, V8 before 12 (Node.js 20: its entries keep the file name and the import()
// settings of the run that wrote them, nodejs/node#35375), a cache directory it cannot trust.
//
// V8 does not check that an entry was compiled from the source it is used for (only the length), so an
// entry decides what runs: the cache is used only where no other user can write. It lives in
// $CLOUD_OPS_JSII_CODE_CACHE, else $XDG_CACHE_HOME/cloud-ops/jsii-code-cache, else
// ~/.cache/cloud-ops/jsii-code-cache, in one directory per Node.js version, architecture and set of
// Node.js options (V8 refuses entries written under other flags), created private to the user; it and
// every directory above it must belong to the user (or root) and be writable by no one else (unless
// sticky, as /tmp). An entry not used for 30 days is removed by a run that writes a new one (after an
// upgrade of aws-cdk-lib). CLOUD_OPS_JSII_CODE_CACHE=off: no cache.

const crypto = require('crypto');
const fs = require('fs');
const Module = require('module');
const os = require('os');
const path = require('path');
const vm = require('vm');

const PARAMETERS = ['exports', 'require', 'module', '__filename', '__dirname'];
const WRAPPER = '(function (exports, require, module, __filename, __dirname) { \n});';
const DYNAMIC_IMPORT = /\bimport\s*\(/;
const DAY = 24 * 60 * 60 * 1000;
const UNUSED_FOR = 30 * DAY;
const COMPILED = Symbol.for('cloud-ops.jsii-code-cache.compiled');
const BODY = `return globalThis[Symbol.for(${JSON.stringify(COMPILED.description)})](module).call(this, exports, require, module, __filename, __dirname);`;

// The Node.js options V8 compiles under (not this preload, nor jsii's --preserve-symlinks).
function optionsKey() {
  const options = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const option = process.execArgv[i];
    if (option === '--require' || option === '-r') i++;
    else if (!option.startsWith('--require=') && option !== '--preserve-symlinks') options.push(option);
  }
  return crypto.createHash('sha256').update(JSON.stringify(options)).digest('hex').slice(0, 12);
}

function cacheDirectory() {
  const setting = process.env.CLOUD_OPS_JSII_CODE_CACHE;
  const root = setting || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cloud-ops', 'jsii-code-cache');
  return path.resolve(root, `${process.version}-${process.arch}-${optionsKey()}`);
}

// `directory` and those above it that are missing, private to the user. One mkdir per level, where
// fs.mkdirSync's `recursive` retries without end under a directory that refuses new entries (/proc).
function makeDirectory(directory) {
  const missing = [];
  for (let at = directory; !fs.existsSync(at); at = path.dirname(at)) missing.unshift(at);
  for (const at of missing) {
    try {
      fs.mkdirSync(at, { mode: 0o700 });
    } catch (error) {
      if (error.code !== 'EEXIST') throw error; // another run made it meanwhile: fine
    }
  }
}

// No one but the user (or root, for the directories above) can change what `directory` holds: checked
// along its real path, where a symbolic link above it leads.
function trusted(directory) {
  const user = process.getuid();
  directory = fs.realpathSync(directory);
  const own = fs.lstatSync(directory);
  if (!own.isDirectory() || own.uid !== user || (own.mode & 0o077) !== 0) return false;
  for (let above = path.dirname(directory); ; above = path.dirname(above)) {
    const stat = fs.statSync(above);
    const writableByOthers = (stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0;
    if ((stat.uid !== user && stat.uid !== 0) || writableByOthers) return false;
    if (path.dirname(above) === above) return true;
  }
}

function write(file, data) {
  const partial = `${file}.${crypto.randomBytes(6).toString('hex')}.partial`;
  try {
    fs.writeFileSync(partial, data, { mode: 0o600, flag: 'wx' });
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
  const v8Major = Number(process.versions.v8.split('.')[0]);
  const usable = v8Major >= 12 && typeof vm.compileFunction === 'function' && typeof process.getuid === 'function'
    && vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  const installed = Object.prototype.hasOwnProperty.call(globalThis, COMPILED); // preloaded twice
  if (process.env.CLOUD_OPS_JSII_CODE_CACHE === 'off' || !usable || installed) return;
  let directory;
  try {
    directory = cacheDirectory();
    makeDirectory(directory);
    if (!trusted(directory)) return;
  } catch {
    return; // no home directory, a read-only one, ...: no cache
  }

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
    // format: undefined or 'commonjs' for CommonJS (a boolean, false for CommonJS, in some earlier releases).
    const commonjs = format === undefined || format === 'commonjs' || format === false;
    const asNodeWould = !commonjs || typeof content !== 'string' || process.sourceMapsEnabled
      || process.env.NODE_V8_COVERAGE || Module.wrap('') !== WRAPPER || DYNAMIC_IMPORT.test(content);
    if (asNodeWould) return compile.apply(this, arguments);
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
