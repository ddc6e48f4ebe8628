// The model page: loads the card from GET /model, scores the form with POST /predict/proba.
// No framework, no external resource. The API key lives in the key field only (never stored).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const authRequired = document.querySelector('meta[name="mlkube-auth-required"]').content === "true";
  const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  const DRIFT_REFRESH_MS = 10000;
  const state = { card: null, route: "/predict/proba", lastEdited: 0, sequence: 0, timer: 0, keyTimer: 0 };

  // --- small helpers ----------------------------------------------------------------------------

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  function formatNumber(value, digits = 4) {
    if (value === null || value === undefined) return "–";
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(digits)));
  }

  function percent(value) {
    return `${(value * 100).toFixed(1)}%`;
  }

  function stepFor(feature) {
    const span = feature.max - feature.min;
    if (!(span > 0)) return 1;
    return 10 ** Math.floor(Math.log10(span / 100));
  }

  function decimalsOf(step) {
    return Math.max(0, -Math.floor(Math.log10(step)));
  }

  async function call(path, options = {}) {
    const headers = { ...(options.headers || {}) };
    const key = $("api-key").value.trim();
    if (key) headers["X-API-Key"] = key;
    const response = await fetch(path, { ...options, headers, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = { error: `${response.status} ${response.statusText}` };
    }
    return { status: response.status, ok: response.ok, body };
  }

  function setStatus(state_, text) {
    const status = $("status");
    status.dataset.state = state_;
    status.textContent = text;
  }

  function showKeyMessage(text, isError) {
    const message = $("key-message");
    message.textContent = text;
    message.classList.toggle("error", Boolean(isError));
    $("api-key").setAttribute("aria-invalid", isError ? "true" : "false");
  }

  function showBanner(text) {
    $("banner").textContent = text;
    $("banner").hidden = !text;
  }

  // --- the card ---------------------------------------------------------------------------------

  async function loadCard() {
    let answer;
    try {
      answer = await call("/model");
    } catch (error) {
      setStatus("error", "offline");
      showBanner(`The server did not answer (${error.message}). Is mlkube still running?`);
      return;
    }
    if (answer.status === 401) {
      setStatus("locked", "API key needed");
      showKeyMessage(keyProblem(answer.body.error), true);
      return;
    }
    if (answer.status === 503) {
      setStatus("waiting", "not ready");
      showBanner(`${answer.body.error} — retrying…`);
      window.setTimeout(loadCard, 2000);
      return;
    }
    if (!answer.ok) {
      setStatus("error", "error");
      showBanner(answer.body.error || `GET /model answered ${answer.status}`);
      return;
    }
    showBanner("");
    $("locked").hidden = true;
    if (authRequired) showKeyMessage("Key accepted.", false);
    state.card = answer.body;
    renderCard(state.card);
    buildForm(state.card);
    setStatus("ready", "ready");
    $("main").hidden = false;
    predictSoon(0);
  }

  function keyProblem(message) {
    const key = $("api-key").value.trim();
    if (!key) return "This server needs an API key: enter it here.";
    return `Key refused: ${message || "invalid API key"}.`;
  }

  function renderCard(card) {
    document.title = `${card.name} ${card.version} · mlkube`;
    $("model-name").textContent = card.name;
    $("model-version").textContent = card.version;
    $("model-version").hidden = false;
    $("description").textContent = card.description;
    $("created").textContent = card.created_at.replace("T", " ").replace("+00:00", " UTC");
    $("runtime").textContent = card.runtime === "onnx" ? "ONNX Runtime" : "scikit-learn";
    $("estimator").textContent = describeParams(card.params);
    renderMetrics(card.metrics);
    const regressor = isRegressor(card);
    $("classes").previousElementSibling.textContent = regressor ? "Predicts a value" : "Classes";
    $("classes").replaceChildren(
      ...card.class_names.map((name, index) => element("li", { className: `chip c${index % 8}`, text: name })),
    );
    $("feature-table").tBodies[0].replaceChildren(
      ...card.features.map((feature) =>
        isCategory(feature)
          ? element(
            "tr",
            {},
            element("th", { scope: "row", text: feature.name }),
            element("td", { colspan: "3", text: `one of ${feature.categories.join(", ")}${feature.missing ? " (or missing)" : ""}` }),
          )
          : element(
            "tr",
            {},
            element("th", { scope: "row", text: feature.name }),
            element("td", { text: formatNumber(feature.min) }),
            element("td", { text: formatNumber(feature.mean) }),
            element("td", { text: formatNumber(feature.max) }),
          ),
      ),
    );
    renderQuality(card);
    renderDrift(card.drift);
  }

  // The running workers' signals: values outside the training range since start, recent class shares.
  function renderDrift(drift) {
    $("drift").hidden = !drift;
    if (!drift) return;
    const minutes = formatNumber(drift.window_seconds / 60, 3);
    $("drift-summary").textContent =
      `${drift.rows} rows scored since start; ${drift.recent} predictions in the last ${minutes} min.`;
    const share = (value) => (value === null ? "–" : percent(value));
    $("drift-features").tBodies[0].replaceChildren(
      ...drift.features.map((feature) =>
        element(
          "tr",
          { className: feature.share ? "outside" : "" },
          element("th", { scope: "row", text: feature.name }),
          element("td", { text: String(feature.below_min) }),
          element("td", { text: String(feature.above_max) }),
          element("td", { text: share(feature.share) }),
        ),
      ),
    );
    $("drift-classes").tBodies[0].replaceChildren(
      ...drift.classes.map((item, index) =>
        element(
          "tr",
          { "data-class": item.name },
          element("th", { scope: "row" }, element("span", { className: `dot c${index % 8}` }), item.name),
          element("td", { text: String(item.recent) }),
          element("td", { text: share(item.share) }),
          element("td", { text: share(item.training) }),
        ),
      ),
    );
  }

  // Every DRIFT_REFRESH_MS while the page is shown, the card's live signals are read again.
  async function refreshDrift() {
    if (!state.card || document.hidden) return;
    let answer;
    try {
      answer = await call("/model");
    } catch {
      return; // the next refresh tries again; predictions show their own errors
    }
    if (answer.ok) {
      state.card.drift = answer.body.drift;
      renderDrift(state.card.drift);
    }
  }

  function describeParams(params) {
    const parts = [params.estimator || "model"];
    if (params.n_estimators !== undefined) parts.push(`${params.n_estimators} trees`);
    if (params.max_depth !== undefined) parts.push(params.max_depth === null ? "no depth limit" : `depth ≤ ${params.max_depth}`);
    if (params.seed !== undefined) parts.push(`seed ${params.seed}`);
    return parts.join(", ");
  }

  function renderMetrics(metrics) {
    const tiles = [
      ["accuracy", metrics.accuracy, percent],
      ["macro-F1", metrics.f1_macro, (value) => value.toFixed(3)],
      ["R²", metrics.r2, (value) => value.toFixed(3)],
      ["mean absolute error", metrics.mae, (value) => formatNumber(value)],
      ["held-out rows", metrics.n_test, String],
      ["training rows", metrics.n_train, String],
    ].filter(([, value]) => value !== undefined);
    $("metrics").replaceChildren(
      ...tiles.map(([label, value, format]) =>
        element("div", { className: "metric" }, element("strong", { text: format(value) }), element("span", { text: label })),
      ),
    );
  }

  function renderQuality(card) {
    $("quality").hidden = card.per_class.length === 0 && card.confusion_matrix.length === 0;
    $("per-class").tBodies[0].replaceChildren(
      ...card.per_class.map((scores, index) =>
        element(
          "tr",
          {},
          element("th", { scope: "row", text: card.class_names[index] }),
          element("td", { text: formatNumber(scores.precision, 3) }),
          element("td", { text: formatNumber(scores.recall, 3) }),
          element("td", { text: formatNumber(scores.f1, 3) }),
          element("td", { text: formatNumber(scores.support) }),
        ),
      ),
    );
    const matrix = $("confusion");
    const largest = Math.max(1, ...card.confusion_matrix.flat());
    matrix.tHead.replaceChildren(
      element("tr", {}, element("th", { text: "" }), ...card.class_names.map((name) => element("th", { scope: "col", text: name }))),
    );
    matrix.tBodies[0].replaceChildren(
      ...card.confusion_matrix.map((row, rowIndex) =>
        element(
          "tr",
          {},
          element("th", { scope: "row", text: card.class_names[rowIndex] }),
          ...row.map((count, columnIndex) => {
            const shade = Math.ceil((count / largest) * 4);
            const kind = rowIndex === columnIndex ? "hit" : "miss";
            return element("td", { className: count ? `${kind} shade${shade}` : "zero", text: String(count) });
          }),
        ),
      ),
    );
  }

  // --- the form ---------------------------------------------------------------------------------

  function buildForm(card) {
    const rows = card.features.map((feature, index) => featureRow(feature, index));
    $("features").replaceChildren(...rows);
    $("samples").replaceChildren(
      ...card.samples.map((row, index) => {
        const button = element("button", { type: "button", className: "sample", id: `sample-${index}` },
          element("span", { className: `dot c${index % 8}` }),
          card.class_names[index] || `class ${index}`);
        button.addEventListener("click", () => loadSample(row));
        return button;
      }),
    );
    $("samples").parentElement.hidden = card.samples.length === 0 || isRegressor(card);
  }

  function isRegressor(card) {
    return card.task === "regression";
  }

  function isCategory(feature) {
    return feature.kind === "category";
  }

  // A category: a dropdown of the values the model knows (and "missing" where it imputes one).
  function categoryRow(feature, index) {
    const select = element("select", { id: `value-${index}`, className: "value", "aria-describedby": `hint-${index}` },
      ...feature.categories.map((value) => element("option", { value, text: value })));
    if (feature.missing) select.append(element("option", { value: "", text: "(missing)" }));
    const hint = element("p", { id: `hint-${index}`, className: "hint" });
    const row = element("div", { className: "feature", "data-index": String(index) },
      element("label", { for: `value-${index}` }, element("span", { className: "name", text: feature.name }),
        element("span", { className: "range muted small", text: `${feature.categories.length} categories` })),
      select, hint);
    select.addEventListener("change", () => edited(index));
    return row;
  }

  function featureRow(feature, index) {
    if (isCategory(feature)) return categoryRow(feature, index);
    const hasRange = feature.min !== null && feature.max !== null;
    const step = hasRange ? stepFor(feature) : 1;
    const decimals = decimalsOf(step);
    const start = hasRange ? (feature.mean ?? feature.min) : 0;
    const text = element("input", {
      id: `value-${index}`, className: "value", type: "text", inputmode: "decimal",
      autocomplete: "off", spellcheck: "false", "aria-describedby": `hint-${index}`,
    });
    text.value = start.toFixed(decimals);
    const slider = element("input", {
      id: `slider-${index}`, className: "slider", type: "range", "aria-label": `${feature.name} slider`,
    });
    if (hasRange) {
      slider.min = String(feature.min);
      slider.max = String(feature.max);
      slider.step = String(step);
      slider.value = text.value;
    } else {
      slider.hidden = true;
    }
    const hint = element("p", { id: `hint-${index}`, className: "hint" });
    const range = hasRange ? `${formatNumber(feature.min)} – ${formatNumber(feature.max)}` : "no training range";
    const row = element("div", { className: "feature", "data-index": String(index) },
      element("label", { for: `value-${index}` }, element("span", { className: "name", text: feature.name }),
        element("span", { className: "range muted small", text: range })),
      slider, text, hint);
    slider.addEventListener("input", () => {
      text.value = Number(slider.value).toFixed(decimals);
      edited(index);
    });
    text.addEventListener("input", () => {
      const value = text.value.trim();
      if (hasRange && NUMBER.test(value)) slider.value = value;
      edited(index);
    });
    return row;
  }

  function loadSample(row) {
    row.forEach((value, index) => {
      $(`value-${index}`).value = String(value);
      const slider = $(`slider-${index}`);
      if (!slider.hidden) slider.value = String(value);
    });
    edited(0, 0);
  }

  function edited(index, delay = 60) {
    state.lastEdited = index;
    predictSoon(delay);
  }

  function rangeHints() {
    state.card.features.forEach((feature, index) => {
      const hint = $(`hint-${index}`);
      const value = Number($(`value-${index}`).value.trim());
      const outside = feature.min !== null && Number.isFinite(value) && (value < feature.min || value > feature.max);
      hint.className = outside ? "hint warn" : "hint";
      hint.textContent = outside ? "outside the training range: the model is guessing" : "";
      $(`value-${index}`).removeAttribute("aria-invalid");
    });
  }

  // Values go to the server as typed: a number when it reads as one, else the text itself (or null
  // when empty), so the server's validation speaks and the page shows its message.
  function features() {
    return state.card.features.map((feature, index) => {
      const text = $(`value-${index}`).value.trim();
      if (text === "") return null;
      if (isCategory(feature)) return text;
      return NUMBER.test(text) ? Number(text) : text;
    });
  }

  // --- prediction -------------------------------------------------------------------------------

  function predictSoon(delay) {
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(predict, delay);
  }

  async function predict() {
    const body = JSON.stringify({ features: features() });
    const sequence = ++state.sequence;
    renderCurl(body);
    let answer;
    try {
      answer = await call("/predict/proba", {
        method: "POST", headers: { "Content-Type": "application/json" }, body,
      });
    } catch (error) {
      if (sequence === state.sequence) showFormError(`The server did not answer (${error.message}).`);
      return;
    }
    if (sequence !== state.sequence) return; // a newer request is on its way
    rangeHints();
    if (answer.ok) {
      clearErrors();
      renderPrediction(answer.body);
    } else if (answer.status === 401) {
      markStale();
      setStatus("locked", "API key needed");
      showKeyMessage(keyProblem(answer.body.error), true);
    } else {
      markStale();
      showServerError(answer.status, answer.body.error || "request refused");
    }
  }

  function renderPrediction(answer) {
    if (isRegressor(state.card)) {
      $("predicted-class").textContent = formatNumber(answer.prediction);
      $("predicted-class").className = "predicted c0";
      $("confidence").textContent = `predicted value · version ${answer.version}`;
      $("bars").replaceChildren();
      document.querySelector(".result").classList.remove("stale");
      if (authRequired) setStatus("ready", "ready");
      return;
    }
    const names = state.card.class_names;
    $("predicted-class").textContent = answer.class_name;
    $("predicted-class").className = `predicted c${answer.prediction % 8}`;
    $("confidence").textContent = `${percent(answer.confidence)} confident · version ${answer.version}`;
    const bars = answer.probabilities.map((probability, index) => {
      const fill = element("span", { className: `fill c${index % 8}` });
      fill.style.width = percent(probability);
      return element("li", { className: index === answer.prediction ? "bar top" : "bar", "data-class": names[index] },
        element("span", { className: "name", text: names[index] }),
        element("span", { className: "track" }, fill),
        element("span", { className: "value", text: percent(probability) }));
    });
    $("bars").replaceChildren(...bars);
    document.querySelector(".result").classList.remove("stale");
    if (authRequired) setStatus("ready", "ready");
  }

  function markStale() {
    document.querySelector(".result").classList.add("stale");
    $("predicted-class").textContent = "–";
    $("predicted-class").className = "predicted";
    $("confidence").textContent = "no prediction: see the message by the field";
  }

  // A 4xx names the bad value's place (`$.features[2]`) when it can: show it under that field.
  function showServerError(status, message) {
    clearErrors();
    const place = /\$\.features\[(\d+)\]/.exec(message);
    const named = /feature '([^']+)'/.exec(message);
    const byName = named ? state.card.features.findIndex((feature) => feature.name === named[1]) : -1;
    const index = place ? Number(place[1]) : byName >= 0 ? byName : state.lastEdited;
    const readable = message.replace(/\s*-\s*at \$\.features\[\d+\]/, "");
    const hint = $(`hint-${index}`);
    const input = $(`value-${index}`);
    if (!hint) {
      showFormError(`${status}: ${readable}`);
      return;
    }
    hint.className = "hint error";
    hint.setAttribute("role", "alert");
    hint.textContent = `${readable} (HTTP ${status})`;
    input.setAttribute("aria-invalid", "true");
  }

  function showFormError(text) {
    $("form-message").textContent = text;
    $("form-message").hidden = false;
  }

  function clearErrors() {
    $("form-message").hidden = true;
    document.querySelectorAll(".hint.error").forEach((hint) => hint.removeAttribute("role"));
    if (authRequired && $("api-key").value.trim()) showKeyMessage("Key accepted.", false);
  }

  // --- curl -------------------------------------------------------------------------------------

  function renderCurl(body) {
    const quote = (text) => (/^[\w:/.@%+=-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`);
    const lines = [`curl -X POST ${quote(window.location.origin + state.route)}`, "  -H 'Content-Type: application/json'"];
    if (authRequired || $("api-key").value.trim()) lines.push('  -H "X-API-Key: $API_KEY"');
    lines.push(`  -d ${quote(body)}`);
    $("curl").textContent = lines.join(" \\\n");
  }

  function chooseRoute(route) {
    state.route = route;
    $("route-proba").setAttribute("aria-pressed", String(route === "/predict/proba"));
    $("route-predict").setAttribute("aria-pressed", String(route === "/predict"));
    if (state.card) renderCurl(JSON.stringify({ features: features() }));
  }

  async function copyCurl() {
    const text = $("curl").textContent;
    try {
      await navigator.clipboard.writeText(text);
      $("copy").textContent = "Copied";
    } catch {
      window.getSelection().selectAllChildren($("curl"));
      $("copy").textContent = "Selected: press Ctrl+C";
    }
    window.setTimeout(() => { $("copy").textContent = "Copy"; }, 1500);
  }

  // --- start --------------------------------------------------------------------------------------

  function start() {
    const key = $("api-key");
    key.placeholder = authRequired ? "required by this server" : "not required here";
    key.addEventListener("input", () => {
      window.clearTimeout(state.keyTimer);
      state.keyTimer = window.setTimeout(() => (state.card ? predictSoon(0) : loadCard()), 250);
    });
    $("route-proba").addEventListener("click", () => chooseRoute("/predict/proba"));
    $("route-predict").addEventListener("click", () => chooseRoute("/predict"));
    $("copy").addEventListener("click", copyCurl);
    window.setInterval(refreshDrift, DRIFT_REFRESH_MS);
    $("features").addEventListener("submit", (event) => event.preventDefault());
    $("key-form").addEventListener("submit", (event) => event.preventDefault());
    if (authRequired) {
      $("locked").hidden = false;
      setStatus("locked", "API key needed");
      showKeyMessage("This server needs an API key: enter it here.", false);
      key.focus();
    } else {
      loadCard();
    }
  }

  start();
})();
