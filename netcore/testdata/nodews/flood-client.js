// Usage: node flood-client.js ws://127.0.0.1:PORT/ws COUNT
// Sends COUNT {"type":"ping"} messages without pausing, then prints one JSON
// line: the pongs and rate_limited errors received (and whether each of those
// carried retryAfterMs), and the close code and reason the client saw. A
// client the server cut off with a TCP reset sees 1006.
'use strict';
const WebSocket = require('ws');

const [url, count] = process.argv.slice(2);
const ws = new WebSocket(url);
const seen = { pongs: 0, rateLimited: 0, retryAfterMs: 0, other: 0, code: 0, reason: '', error: '' };

setTimeout(() => { seen.error = 'timed out'; done(); }, 15000).unref();

function done() {
  console.log(JSON.stringify(seen));
  process.exit(0);
}

ws.on('open', () => {
  for (let i = 0; i < Number(count); i++) ws.send('{"type":"ping"}');
});
ws.on('message', (data) => {
  let m;
  try { m = JSON.parse(data); } catch (e) { seen.other++; return; }
  if (m.type === 'pong') seen.pongs++;
  else if (m.type === 'error' && m.code === 'rate_limited') {
    seen.rateLimited++;
    if (typeof m.retryAfterMs === 'number') seen.retryAfterMs++;
  } else seen.other++;
});
ws.on('error', (err) => { seen.error = err.message; });
ws.on('close', (code, reason) => {
  seen.code = code;
  seen.reason = reason.toString();
  done();
});
