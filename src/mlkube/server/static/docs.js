// mlkube's /docs page: Swagger UI on this server's own /openapi.json. Nothing is fetched from elsewhere:
// the validator badge (which calls validator.swagger.io) is off, and every asset comes from /docs/.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
