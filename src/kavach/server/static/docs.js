// Starts Swagger UI on /api/v1/docs. It is a file of its own, not a script in the page,
// because the page's Content-Security-Policy runs scripts from this server only.
"use strict";

(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The public validator would receive the API description; nothing leaves this server.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
