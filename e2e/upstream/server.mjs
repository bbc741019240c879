// A Tomcat/Spring-like upstream for the differential end-to-end test (e2e/differential_test.go).
// Test-only. It listens on 127.0.0.1 (a free port, printed on the ready line) and answers
// every request it serves with JSON {"upstream": "express", "route": NAME, "path": P, "id": ID,
// "user": U, "groups": G} where ID is the request's X-Diff-Id header and U, G its
// X-Auth-Request-User and -Groups headers. A request it refuses gets a 400 with
// {"error": ...} and no "route".
//
// Path semantics (servlet container + Spring/express routing), applied to the raw
// request-target exactly as it arrived (Node does not decode it):
//   1. absolute-form ("http://host/p") is reduced to its path; the query ("?…") and a
//      fragment ("#…", which clients never send, but a raw request can) are cut off;
//   2. path parameters are removed: from every ";" up to the next "/" (Tomcat's
//      parsePathParameters; it runs before decoding, so "%3b" is not a separator);
//   3. percent-escapes are decoded once into bytes; a malformed escape or a NUL is a 400;
//      an encoded "/" ("%2f") becomes a separator (Tomcat's encodedSolidusHandling=decode,
//      the permissive setting, chosen to differ from Go's ServeMux as much as possible);
//   4. "\" is a separator (Tomcat's ALLOW_BACKSLASH=true, also the permissive setting);
//   5. "//" is merged, "." and ".." segments are resolved; ".." above the root is a 400;
//   6. the bytes are read as UTF-8 (invalid sequences become U+FFFD);
//   7. express 5 routes the result, case-insensitively (express's default): "/ADMIN/x"
//      is served by the admin route. app.use("/admin") matches "/admin" and "/admin/…".
//
// Routes (the same names as the Go ServeMux upstream and the test's policy): admin,
// public, user-public (under /user/public), user, docs-read (GET/HEAD under /docs), docs-write (any other method under
// /docs) and default (everything else).
import express from 'express';

export function normalize(target) {
  let p = target;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(p);
  if (scheme) p = p.slice(scheme[0].length) || '/';
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  if (!p.startsWith('/')) return { error: 'not an origin-form path' };
  p = p.replace(/;[^/]*/g, '');
  const bytes = [];
  for (let i = 0; i < p.length; i++) {
    let c = p.charCodeAt(i);
    if (c === 0x25) { // '%'
      const hex = p.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return { error: 'malformed percent-escape' };
      c = parseInt(hex, 16);
      i += 2;
    }
    if (c === 0) return { error: 'NUL in path' };
    if (c === 0x5c) c = 0x2f; // '\' → '/'
    if (c > 0xff) { // a non-Latin-1 character Node decoded from raw bytes: keep its UTF-8
      for (const b of Buffer.from(String.fromCharCode(c), 'utf8')) bytes.push(b);
      continue;
    }
    bytes.push(c);
  }
  const out = [];
  for (const seg of Buffer.from(bytes).toString('utf8').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return { error: '".." above the root' };
      out.pop();
      continue;
    }
    out.push(seg);
  }
  const trailing = /\/$/.test(p) && out.length > 0 ? '/' : '';
  return { path: '/' + out.join('/') + trailing, segments: out };
}

const app = express();
app.disable('x-powered-by');
app.set('etag', false);

app.use((req, res, next) => {
  const n = normalize(req.url);
  if (n.error) {
    res.status(400).json({ upstream: 'express', error: n.error });
    return;
  }
  req.normalizedPath = n.path;
  // express matches on an encoded path: re-encode each segment so that a decoded "?",
  // "#" or "%" cannot be read as syntax again (that would be a second decoding).
  req.url = '/' + n.segments.map(encodeURIComponent).join('/') + (n.path.endsWith('/') && n.segments.length ? '/' : '');
  next();
});

function serve(route) {
  return (req, res) => {
    res.json({
      upstream: 'express', route, path: req.normalizedPath, id: req.get('x-diff-id') || '',
      // the identity headers as they arrived (the proxy must have replaced client copies)
      user: req.headers['x-auth-request-user'] || '', groups: req.headers['x-auth-request-groups'] || '',
    });
  };
}

app.use('/admin', serve('admin'));
app.use('/public', serve('public'));
app.use('/user/public', serve('user-public')); // before /user: the first match serves
app.use('/user', serve('user'));
app.use('/docs', (req, res, next) => serve(req.method === 'GET' || req.method === 'HEAD' ? 'docs-read' : 'docs-write')(req, res, next));
app.use(serve('default'));

const server = app.listen(0, '127.0.0.1', () => {
  console.log('E2E-UPSTREAM-READY ' + JSON.stringify({ port: server.address().port }));
});
server.keepAliveTimeout = 5000;
process.on('SIGTERM', () => server.close(() => process.exit(0)));
