// An SSH client as VSCodium's open-remote-ssh builds one: Node's child_process.spawn runs the
// host's ProxyCommand (its stdin and stdout are then socketpairs of their own), and the ssh2
// library speaks SSH over them. Used by tests/test_clients_without_terminal.py.
//
//     node ssh2_client.js '{"proxyCommand": ..., "user": ..., "keys": [...],
//                           "knownHosts": ..., "shell": false, "input": ..., "command": ...}'
//
// With "shell" it opens a shell without a terminal and writes "input" to it; else it runs
// "command". Prints {"stdout", "stderr", "code"} as JSON; a failure: its message, exit 1.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const { Duplex } = require('stream');
const { Client } = require('ssh2');

const options = JSON.parse(process.argv[2]);
const proxy = spawn(options.proxyCommand, { shell: true, stdio: ['pipe', 'pipe', 'inherit'] });
const sock = new Duplex({
  read() {},
  write(chunk, encoding, done) { proxy.stdin.write(chunk, done); },
  final(done) { proxy.stdin.end(); done(); },
});
proxy.stdout.on('data', (data) => sock.push(data));
proxy.stdout.on('end', () => sock.push(null));

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

// The key files are read when the server asks: the ProxyCommand points the first at the key
// this session needs, and pins the job's host key, before SSH's first byte.
const keys = [...options.keys];
function authHandler(methodsLeft, partialSuccess, callback) {
  const file = keys.shift();
  if (file === undefined) return callback(false);
  return callback({ type: 'publickey', username: options.user, key: fs.readFileSync(file) });
}

function hostVerifier(key) {
  const pinned = fs.readFileSync(options.knownHosts, 'utf8').split('\n')
    .map((line) => line.split(' ')[2]);
  return pinned.includes(key.toString('base64'));
}

function collect(stream) {
  const out = [];
  const err = [];
  stream.on('data', (data) => out.push(data));
  stream.stderr.on('data', (data) => err.push(data));
  stream.on('close', (code) => {
    process.stdout.write(JSON.stringify({
      stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code,
    }));
    conn.end();
  });
}

const conn = new Client();
conn.on('error', (err) => fail(`ssh2: ${err.message}`));
conn.on('ready', () => {
  if (options.shell) {
    conn.shell(false, (err, stream) => {
      if (err) fail(`ssh2 shell: ${err.message}`);
      collect(stream);
      stream.end(options.input);
    });
  } else {
    conn.exec(options.command, (err, stream) => {
      if (err) fail(`ssh2 exec: ${err.message}`);
      collect(stream);
    });
  }
});
conn.on('close', () => proxy.kill());
conn.connect({ sock, username: options.user, authHandler, hostVerifier, readyTimeout: 30000 });
