// What both test pages share: the configuration the Go test serves, and
// the elements it reads (#status, #result) and clicks (#login, #logout).
export const $ = (id) => document.getElementById(id);

export async function config() {
  return (await fetch("/config.json")).json();
}

export function show(status, result) {
  $("status").textContent = status;
  if (result !== undefined) $("result").textContent = JSON.stringify(result);
}

export function run(main) {
  main().catch((e) => show(`error: ${e.name}: ${e.message}${e.error ? ` (${e.error})` : ""}`));
}
