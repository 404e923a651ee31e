// JWT (HS256) check for Nchan's nchan_authorize_request, run inside nginx by njs.
//
// Nchan sends an internal subrequest to /_auth before it upgrades a subscriber's
// WebSocket; 2xx lets the subscriber in, anything else is answered to the client
// instead of the 101. This handler answers 204 for a token that is signed with the
// shared secret (HS256 only), unexpired, already valid (nbf) and whose "sub" is the
// user id of the path (the channel id); 401 for a missing or bad token; 403 for a
// good token of another user (Nchan passes 401 and 403 on to the client as is).
const crypto = require('crypto');

function s_json_part(part) {
    return JSON.parse(Buffer.from(part, 'base64url').toString());
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
    if (mac !== parts[2]) {
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

function verify(r) {
    const secret = process.env.TASKCAST_PEER_JWT_SECRET;
    // The subrequest has no query string of its own: $request_uri is the
    // subscriber's, /api/v1/ws/tasks/{user_id}?token=...
    const uri = r.headersIn['X-Original-URI'] || r.variables.request_uri || '';
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

export default { verify };
