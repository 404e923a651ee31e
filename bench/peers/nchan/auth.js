// JWT (HS256) check of the nginx + Nchan peer, run inside nginx by njs.
//
// nginx asks it, in a subrequest, before Nchan upgrades a subscriber's WebSocket:
// by auth_request /_auth_njs (the default), or by nchan_authorize_request through
// the unix-socket server of nginx.conf.in (TASKCAST_PEER_NCHAN_AUTH=nchan). A 2xx
// lets the subscriber in; anything else is answered to the client instead of the
// 101. It answers 204 for a token signed with the shared secret (HS256 only),
// unexpired, already valid (nbf) and whose "sub" is the user id of the path; 401
// for a missing or bad token; 403 for a good token of another user.
const crypto = require('crypto');

function s_json_part(part) {
    return JSON.parse(Buffer.from(part, 'base64url').toString());
}

// Compares in a time that does not depend on where the strings differ
// (njs 0.7 has no crypto.timingSafeEqual).
function s_same(a, b) {
    if (a.length !== b.length) {
        return false;
    }
    let diff = 0;
    for (let i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

// Returns the claims of a good token, or null.
function s_claims(token, secret) {
    const parts = token.split('.');
    if (parts.length !== 3 || parts[2].length === 0) {
        return null;
    }
    const mac = crypto.createHmac('sha256', secret)
        .update(parts[0] + '.' + parts[1])
        .digest('base64url');
    if (!s_same(mac, parts[2])) {
        return null;
    }
    let header;
    let claims;
    try {
        header = s_json_part(parts[0]);
        claims = s_json_part(parts[1]);
    } catch (e) {
        return null;
    }
    if (header === null || header.alg !== 'HS256' || claims === null ||
        typeof claims !== 'object') {
        return null;
    }
    const now = Date.now() / 1000;
    if (typeof claims.exp !== 'number' || claims.exp <= now) {
        return null;
    }
    if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > now)) {
        return null;
    }
    if (typeof claims.sub !== 'string') {
        return null;
    }
    return claims;
}

// Answers for the subscriber whose URI is /api/v1/ws/tasks/{user_id}?token=...
function s_answer(r, uri) {
    const secret = process.env.TASKCAST_PEER_JWT_SECRET;
    const path = uri.match(/^\/api\/v1\/ws\/tasks\/([^/?]+)/);
    const m = uri.match(/[?&]token=([^&]*)/);
    if (!secret || !path || !m) {
        r.return(401);
        return;
    }
    const claims = s_claims(decodeURIComponent(m[1]), secret);
    if (claims === null) {
        r.return(401);
        return;
    }
    r.return(claims.sub === decodeURIComponent(path[1]) ? 204 : 403);
}

// auth_request subrequest: $request_uri is the subscriber's own. (Its headers are
// the client's, so nothing is taken from them.)
function verify(r) {
    s_answer(r, r.variables.request_uri || '');
}

// Request proxied from /_auth_proxy, which sets X-Original-URI over anything the
// client sent.
function verify_proxied(r) {
    s_answer(r, r.headersIn['X-Original-URI'] || '');
}

export default { verify, verify_proxied };
