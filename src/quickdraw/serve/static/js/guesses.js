// The guess list. Class names come from the checkpoint and are shown as text (textContent), never as markup.

export function renderGuesses(list, status, result) {
  list.dataset.version = String(result.version);
  if (result.pending) { list.dataset.state = "pending"; return; }
  list.replaceChildren();
  if (result.empty) {
    list.dataset.state = "empty";
    status.textContent = "Draw on the canvas; the model guesses as you go.";
    return;
  }
  if (result.error) {
    list.dataset.state = "error";
    status.textContent = `The server refused the drawing: ${result.error.message}`;
    return;
  }
  const { answer } = result;
  if (answer.skipped) {
    list.dataset.state = "skipped";
    status.textContent = answer.skipped.startsWith("too_short") ? "Keep drawing…" : `Not classified: ${answer.skipped}`;
    return;
  }
  for (const { class: name, prob } of answer.top) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "class";
    label.textContent = name;
    const pct = document.createElement("span");
    pct.className = "prob";
    pct.textContent = `${(100 * prob).toFixed(1)}%`;
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = 1; meter.value = prob;
    li.append(label, pct, meter);
    list.append(li);
  }
  list.dataset.state = "done";
  status.textContent = `Model ${answer.model.version}: ${answer.input} drawing, ${answer.model.classes.length} classes.`;
}
