#!/usr/bin/env node
// An OTLP/HTTP logs receiver for the tests, decoding with the official
// OpenTelemetry JavaScript packages: the protobufjs classes generated from
// opentelemetry-proto that @opentelemetry/otlp-transformer ships
// (build/src/generated/root.js, in releases up to 0.57; later releases
// serialize by hand and ship no decoder).
//
//   otlp_receiver.js --out FILE --port-file FILE [--plan LIST]
//
// Every POST /v1/logs is gunzip'd when Content-Encoding says gzip, decoded as
// ExportLogsServiceRequest (application/x-protobuf: the generated decoder;
// application/json: JSON.parse, then the generated fromObject, protobufjs'
// reading of the proto3 JSON form), and appended to FILE as one JSON
// line: {n, status, t (ms), contentType, contentEncoding, sha256, request}
// with 64-bit integers as decimal strings. A request that cannot be decoded
// is answered 400 and recorded with "error".
//
// --plan says how to answer the first requests, in order, comma-separated:
//   429:S        429 with Retry-After: S (delta-seconds)
//   503:date:S   503 with Retry-After: an HTTP-date S seconds from now
//   200:partial:N  200 with partial_success.rejected_log_records = N
// Requests beyond the plan are answered 200 with an empty response.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const zlib = require('zlib');

const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');
const svc = root.opentelemetry.proto.collector.logs.v1;
const Req = svc.ExportLogsServiceRequest;
const Resp = svc.ExportLogsServiceResponse;

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const plan = (args.plan || '').split(',').filter((s) => s);
let n = 0;

const toObj = (m) => Req.toObject(m, { longs: String, enums: Number, bytes: String });

function answer(res, status, headers, json, partial) {
  let body;
  const r = partial ? { partialSuccess: { rejectedLogRecords: partial,
                                         errorMessage: 'kmon test: rejected on purpose' } }
                    : {};
  if (json) {
    body = Buffer.from(JSON.stringify(r.partialSuccess ?
      { partialSuccess: { rejectedLogRecords: String(partial),
                          errorMessage: r.partialSuccess.errorMessage } } : {}));
    headers['Content-Type'] = 'application/json';
  } else {
    body = Buffer.from(Resp.encode(Resp.fromObject(r)).finish());
    headers['Content-Type'] = 'application/x-protobuf';
  }
  headers['Content-Length'] = body.length;
  res.writeHead(status, headers);
  res.end(body);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const rec = {
      n: ++n, t: Date.now(), path: req.url,
      contentType: req.headers['content-type'] || '',
      contentEncoding: req.headers['content-encoding'] || '',
      sha256: crypto.createHash('sha256').update(raw).digest('hex'),
    };
    const json = rec.contentType === 'application/json';
    try {
      if (req.method !== 'POST' || req.url !== '/v1/logs')
        throw new Error('not POST /v1/logs: ' + req.method + ' ' + req.url);
      const body = rec.contentEncoding === 'gzip' ? zlib.gunzipSync(raw) : raw;
      if (json) {
        // fromObject, not verify: verify checks a message object, where a
        // 64-bit integer is a number or a Long, not the JSON mapping's
        // decimal string. A key the mapping does not have is ignored here;
        // the test catches it as a missing field.
        rec.request = toObj(Req.fromObject(JSON.parse(body.toString('utf8'))));
      } else if (rec.contentType === 'application/x-protobuf') {
        rec.request = toObj(Req.decode(body));
      } else {
        throw new Error('content type ' + rec.contentType);
      }
    } catch (e) {
      rec.status = 400;
      rec.error = String(e && e.message || e);
      fs.appendFileSync(args.out, JSON.stringify(rec) + '\n');
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(rec.error);
      return;
    }
    const step = (plan[rec.n - 1] || '200').split(':');
    const headers = {};
    let partial = 0;
    rec.status = Number(step[0]);
    if (step[1] === 'date')
      headers['Retry-After'] = new Date(Date.now() + Number(step[2]) * 1000).toUTCString();
    else if (step[1] === 'partial')
      partial = Number(step[2]);
    else if (step.length > 1)
      headers['Retry-After'] = step[1];
    rec.retryAfter = headers['Retry-After'] || null;
    rec.partial = partial;
    fs.appendFileSync(args.out, JSON.stringify(rec) + '\n');
    answer(res, rec.status, headers, json, partial);
  });
});

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(args['port-file'] + '.tmp', String(server.address().port));
  fs.renameSync(args['port-file'] + '.tmp', args['port-file']);
});
