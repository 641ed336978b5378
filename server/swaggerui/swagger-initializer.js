// Boots Swagger UI against the server's OpenAPI document. Kept out of
// index.html so the page works under a strict Content-Security-Policy
// (no inline scripts).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
