// Package swaggerui embeds a self-contained copy of Swagger UI so the server
// can serve interactive API docs without any CDN.
//
// Assets come unmodified from the npm package swagger-ui-dist@5.35.0
// (Apache-2.0, see LICENSE): swagger-ui-bundle.js, swagger-ui.css and
// favicon-32x32.png. index.html and swagger-initializer.js are our own; the
// latter loads /openapi.json.
package swaggerui

import "embed"

// FS holds Swagger UI 5.35.0 (version from the npm package swagger-ui-dist),
// served under /swagger-ui/.
//
//go:embed index.html swagger-initializer.js swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE
var FS embed.FS
