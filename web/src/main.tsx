import { render } from "preact";
import { App } from "./ui/app";
import { Bridge } from "./worker/bridge";
import { getLang, setLang } from "./ui/i18n";
import "./ui/style.css";

setLang(getLang());
const bridge = await Bridge.connect();
(globalThis as { tinyim?: Bridge }).tinyim = bridge; // for the browser tests and the curious
render(<App bridge={bridge} />, document.getElementById("app")!);
