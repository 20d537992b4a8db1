'use strict';
// jsii's runtime in one process: its kernel answers Python itself, without the relay process jsii
// puts between them (see infra/jsii-node, which starts this, and docs/decisions/0005-scale-and-speed.md).
//
//   node <jsii's flags> --preserve-symlinks infra/jsii-direct.js <jsii's bin/jsii-runtime.js>
//   with fd 3: Python's requests (jsii's stdin), fd 4: the answers (jsii's stdout), fds 1 and 2: jsii's stderr
//
// jsii's runtime is two Node.js processes. The first, bin/jsii-runtime.js (the relay), checks the
// Node.js version, starts the kernel (lib/program.js) as a child with one socket for requests and
// answers (its fd 3), and copies every message between Python's pipes and that socket; it also wraps
// what the kernel writes to its stdout and stderr as {"stdout"|"stderr": <base64>} lines on its own
// stderr, which jsii's Python decodes. Every call from Python to aws-cdk-lib, and every answer, passes
// through the relay: two more process wake-ups each, thousands per synth. Here, in one process:
//
// - The relay's own bundle runs, with child_process.spawn standing in: its first step (jsii's check of
//   the Node.js version and its warnings) runs as it would, and its second, starting the kernel, hands
//   over the command it would have run. The kernel is that file, run with these flags (checked: the
//   relay's flags, plus --preserve-symlinks, which infra/jsii-node passes). A relay that starts its
//   kernel otherwise (another jsii) runs as jsii runs it, in a child on the same pipes, with a note.
// - The kernel's source has its channel moved from fd 3 for both directions to fd 3 for requests and
//   fd 4 for answers (the pipes infra/jsii-node put there): one change, made only where the source
//   holds exactly one such channel (infra/jsii-node checks it before it starts this).
// - process.stdout and process.stderr write the relay's JSON lines to fd 2, synchronously, and an error
//   nothing caught is printed through them before the process ends with code 1, as Node.js would.
//
// Everything else is the kernel's own code, in the same Node.js with the same flags. What still reaches
// jsii unwrapped (its Python then prints each line as a bytes repr): the output of a child process
// given this process's stdout or stderr, and what Node.js or V8 write straight to fd 1 or 2 (a fatal
// error such as the heap's limit, --trace-* flags).

const childProcess = require('child_process');
const fs = require('fs');
const Module = require('module');
const os = require('os');
const path = require('path');
const { Writable } = require('stream');

const CHANNEL = 'readFD:3,writeFD:3';
const MOVED = 'readFD:3,writeFD:4';
const ERRORS = 2;
const pause = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, buffer) {
  for (let written = 0, wait = 1; written < buffer.length;) {
    try {
      written += fs.writeSync(fd, buffer, written);
      wait = 1;
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error;
      Atomics.wait(pause, 0, 0, wait); // a pipe someone made non-blocking, full: as the kernel's own writes do
      wait = Math.min(2 * wait, 10);
    }
  }
}

// What the kernel writes to `key` ("stdout" or "stderr"), as the relay forwards it. Its `fd` (1 or 2,
// both jsii's stderr here) is what a child process given this stream as its stdio writes to: the
// child's output reaches jsii unwrapped (aws-cdk-lib hands process.stderr to docker when it bundles).
function relayed(key, fd) {
  const stream = new Writable({
    write(chunk, encoding, callback) {
      writeAll(ERRORS, Buffer.from(`${JSON.stringify({ [key]: chunk.toString('base64') })}\n`));
      callback();
    },
  });
  stream.fd = fd;
  return stream;
}

for (const [key, fd] of [['stdout', 1], ['stderr', 2]]) {
  Object.defineProperty(process, key, { value: relayed(key, fd), configurable: true, enumerable: true, writable: true });
}

// A line of this file's own on the runtime's stderr, wrapped as the kernel's (process.stderr writes at once).
function note(text) {
  process.stderr.write(`cloud-ops (infra/jsii-direct.js): ${text}\n`);
}

function fail(message) {
  note(`${message}; CLOUD_OPS_JSII_DIRECT=off runs jsii's runtime as jsii does`);
  process.exit(1);
}
// An error nothing caught ends the process as Node.js would (exit code 1), its trace wrapped as the relay
// wrapped Node.js's own print of it (which goes straight to fd 2).
process.on('uncaughtException', (error, origin) => {
  process.stderr.write(`${origin === 'unhandledRejection' ? 'Unhandled rejection' : 'Uncaught exception'}: ${error && error.stack ? error.stack : String(error)}\n`);
  process.exit(1);
});

class Started {
  constructor(command, args, options) {
    Object.assign(this, { command, args, options });
  }
}

const runtime = fs.realpathSync(process.argv[2]); // as Node.js resolves a main module, where the relay ran
const spawn = childProcess.spawn;
let started;
childProcess.spawn = (command, args, options) => {
  throw new Started(command, args, options);
};
try {
  require(runtime);
} catch (error) {
  if (!(error instanceof Started)) throw error;
  started = error;
} finally {
  childProcess.spawn = spawn;
}
if (started === undefined) fail(`${runtime} did not start its kernel`);

// jsii's runtime as jsii runs it (its relay, which starts its kernel), on the pipes this process was
// given, where the kernel cannot run here: this process waits for the relay and ends as it ends.
function asJsiiRunsIt(reason) {
  note(`${reason}; jsii's runtime runs as jsii runs it`);
  // The relay's own flags: this process's, but the --preserve-symlinks infra/jsii-node added.
  const flags = process.execArgv.slice(0, process.execArgv.lastIndexOf('--preserve-symlinks'));
  const relay = spawn(process.execPath, [...flags, runtime], { stdio: [3, 4, 2] });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) process.on(signal, () => relay.kill(signal));
  relay.once('error', (error) => fail(`jsii's runtime did not start: ${error.message}`));
  relay.once('exit', (code, signal) => process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0)));
}

function runKernel() {
  const { command, args, options } = started;
  const program = args[args.length - 1];
  const expected = [...process.execArgv, '--preserve-symlinks', program];
  const stdio = JSON.stringify(options && options.stdio);
  if (command !== process.execPath || JSON.stringify(args) !== JSON.stringify(expected) || stdio !== '["ignore","pipe","pipe","pipe"]') {
    return asJsiiRunsIt(`jsii's runtime starts its kernel otherwise than expected: ${JSON.stringify([command, args, options])}`);
  }
  const parts = fs.readFileSync(program, 'utf8').split(CHANNEL);
  if (parts.length !== 2) return asJsiiRunsIt(`${program} holds ${parts.length - 1} channels ${CHANNEL}, not one`);

  // Run as Node.js runs a main module (its require.main, its paths), as the relay's child ran it.
  const kernel = new Module(program, null);
  kernel.id = '.';
  kernel.filename = program;
  kernel.paths = Module._nodeModulePaths(path.dirname(program));
  Module._cache[program] = kernel;
  process.mainModule = kernel;
  process.argv.splice(1, process.argv.length - 1, program);
  kernel._compile(parts.join(MOVED), program);
  kernel.loaded = true;
}

runKernel();
