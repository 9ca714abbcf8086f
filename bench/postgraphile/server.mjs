// PostGraphile v5 (Amber preset, grafserv on node:http) serving ward's database, as the peer of
// `ward-bench http`. Each request runs in one transaction with the settings ward sets per
// transaction: `role` = the token's `role` claim and `request.jwt.claims` = the verified claims
// as JSON (PostGraphile sends them with `set_config(..., true)`), so the same RLS policies decide.
//
// Environment:
//   DATABASE_URL  the login role ward uses (`authenticator`), e.g.
//                 postgres://authenticator:PASSWORD@127.0.0.1:PORT/ward
//   JWT_SECRET    the HS256 secret ward verifies tokens with (ward's SUPABASE_JWT_SECRET)
//   PORT          port to listen on (default 5678); HOST (default 127.0.0.1)
//   PG_POOL_MAX   connections in the pool (default 16, like ward's pool in the benchmark)
//
// Ready: prints `listening on PORT` once the schema is built and the port is open; GET / (and
// GET /ready) answers 200 `ok` from then on.
// Auth: no Authorization header runs as `anon` (claims {"role":"anon"}, as ward); a bad,
// expired or unacceptable token gets 401 before any GraphQL work, as ward refuses it.

// Production mode before grafast loads (it reads this once, at import).
process.env.NODE_ENV ??= "production";
process.env.GRAPHILE_ENV ??= "production";

const { createServer } = await import("node:http");
const { default: jwt } = await import("jsonwebtoken");
const { postgraphile } = await import("postgraphile");
const { PostGraphileAmberPreset } = await import("postgraphile/presets/amber");
const { makePgService } = await import("postgraphile/adaptors/pg");
const { grafserv } = await import("postgraphile/grafserv/node");
const { jsonPgSmartTags } = await import("postgraphile/utils");

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
};
const DATABASE_URL = need("DATABASE_URL");
const JWT_SECRET = need("JWT_SECRET");
const PORT = Number(process.env.PORT ?? 5678);
const HOST = process.env.HOST ?? "127.0.0.1";
const PG_POOL_MAX = Number(process.env.PG_POOL_MAX ?? 16);

const ANON = { role: "anon", claims: JSON.stringify({ role: "anon" }) };
const LEEWAY_SECONDS = 30; // ward's leeway for exp/nbf

class Unauthenticated extends Error {}

/** The caller of a request, as ward decides it (src/auth/jwt.rs): HS256 only, exp required. */
function caller(req) {
  const header = req.headers.authorization;
  if (header === undefined) return ANON;
  const [scheme, token, extra] = header.trim().split(/\s+/);
  if (!/^bearer$/i.test(scheme ?? "") || !token || extra !== undefined) {
    throw new Unauthenticated("malformed Authorization header");
  }
  let claims;
  try {
    claims = jwt.verify(token, JWT_SECRET, { algorithms: ["HS256"], clockTolerance: LEEWAY_SECONDS });
  } catch (e) {
    throw new Unauthenticated(e.message);
  }
  if (claims === null || typeof claims !== "object" || typeof claims.exp !== "number") {
    throw new Unauthenticated("no exp");
  }
  const role = claims.role;
  if (role === "authenticated") {
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes("authenticated")) throw new Unauthenticated("bad audience");
    if (typeof claims.sub !== "string") throw new Unauthenticated("bad subject");
  } else if (role === "anon" || role === "service_role") {
    // As ward: these run with claims {"role": ...} only.
    return { role, claims: JSON.stringify({ role }) };
  } else {
    throw new Unauthenticated("bad role");
  }
  return { role, claims: JSON.stringify(claims) };
}

// Smart tags instead of DDL, so ward's database stays exactly as ward runs on it:
// - media's foreign key to tickets is (municipality_id, ticket_id), and no index holds both
//   columns (ward's `media_ticket_idx` is (ticket_id, created_at, id)), so PostGraphile would
//   hide the backward relation `Ticket.mediaByMunicipalityIdAndTicketId`; `@isIndexed` keeps it
//   (the lateral lookup by ticket_id still uses media_ticket_idx).
// - tickets.tracking_number is NOT NULL with no default: a trigger assigns it (and overwrites
//   anything given), so `@hasDefault` makes it optional in `createTicket`.
const WardTagsPlugin = jsonPgSmartTags({
  version: 1,
  config: {
    constraint: { "public.media.media_municipality_id_ticket_id_fkey": { tags: { isIndexed: true } } },
    attribute: { "public.tickets.tracking_number": { tags: { hasDefault: true } } },
  },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [WardTagsPlugin],
  pgServices: [
    makePgService({
      connectionString: DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: PG_POOL_MAX },
    }),
  ],
  grafast: {
    explain: false,
    context(requestContext) {
      const who = requestContext.node?.req?.wardCaller ?? ANON;
      return { pgSettings: { role: who.role, "request.jwt.claims": who.claims } };
    },
  },
  grafserv: {
    graphqlPath: "/graphql",
    graphiql: false,
    graphiqlOnGraphQLGET: false,
    watch: false,
    websockets: false,
  },
};

const pgl = postgraphile(preset);
// Build the schema (introspecting the database) before saying we are ready.
await pgl.getSchemaResult();
const serv = pgl.createServ(grafserv);
const graphql = serv.createHandler();

const server = createServer((req, res) => {
  if (req.method === "GET" && (req.url === "/" || req.url === "/ready")) {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    return;
  }
  try {
    req.wardCaller = caller(req);
  } catch (e) {
    if (!(e instanceof Unauthenticated)) throw e;
    res
      .writeHead(401, { "content-type": "application/json" })
      .end(JSON.stringify({ errors: [{ message: "invalid token", extensions: { code: "UNAUTHENTICATED" } }] }));
    return;
  }
  graphql(req, res);
});
server.keepAliveTimeout = 65_000;

const shutdown = async () => {
  server.close();
  await pgl.release();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

server.listen(PORT, HOST, () => {
  console.log(`listening on ${server.address().port}`);
});
