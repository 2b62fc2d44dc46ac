// Swagger UI for /api/v1/openapi.json. Requests carry the CSRF token, so "Try it out" also
// works through a signed-in browser session; refresh/logout carry the header they require.
window.addEventListener("load", function () {
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    requestInterceptor: function (request) {
      request.headers["X-CSRFToken"] = csrf;
      if (/\/api\/v1\/auth\/(refresh|logout)$/.test(request.url)) {
        request.headers["X-Requested-With"] = "XMLHttpRequest";
      }
      return request;
    },
  });
});
