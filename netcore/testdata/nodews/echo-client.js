// Usage: node echo-client.js ws://127.0.0.1:PORT/echo deflate|plain
// Sends text and binary messages of several sizes, checks each echo, closes
// with 1000 and checks the server's close reply. Exit status 0 on success.
'use strict';
const WebSocket = require('ws');

const [url, mode] = process.argv.slice(2);
const deflate = mode === 'deflate';
const ws = new WebSocket(url, { perMessageDeflate: deflate ? { threshold: 0 } : false });

const texts = ['hello', 'sockmon '.repeat(200), 'é€😀 '.repeat(5000), ''];
const binaries = [Buffer.from([0, 1, 2, 255]), Buffer.alloc(70000, 7), Buffer.alloc(0)];
const queue = [];
for (const t of texts) queue.push({ data: t, binary: false });
for (const b of binaries) queue.push({ data: b, binary: true });

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

setTimeout(() => fail('timed out'), 10000).unref();

let current;
function next() {
  current = queue.shift();
  if (!current) {
    ws.close(1000, 'done');
    return;
  }
  ws.send(current.data, { binary: current.binary });
}

ws.on('open', () => {
  const ext = ws.extensions;
  if (deflate !== ext.includes('permessage-deflate')) fail('negotiated extensions: ' + JSON.stringify(ext));
  next();
});
ws.on('message', (data, isBinary) => {
  const want = Buffer.from(current.data);
  if (isBinary !== current.binary) fail('echo type changed');
  if (!Buffer.from(data).equals(want)) fail('echo of ' + want.length + ' bytes differs');
  next();
});
ws.on('close', (code) => {
  if (queue.length > 0 || current) fail('closed early with ' + code);
  if (code !== 1000) fail('close code ' + code);
  console.log('ok ' + (deflate ? 'deflate' : 'plain'));
  process.exit(0);
});
ws.on('error', (err) => fail(err.message));
