#include "admin/dashboard.hpp"

namespace troupe {

namespace {

// Stages are laid out in columns by their depth from the sources (the longest path to them),
// in the app's order within a column; edges are drawn as curves between the columns.
const char* page = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>troupe</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{padding:10px 16px;background:#1d2330;color:#fff;display:flex;gap:24px;align-items:baseline}
header b{font-size:16px} #status span{margin-right:16px;opacity:.85}
main{display:flex;gap:16px;padding:16px} #graph{flex:1;background:#fff;border:1px solid #dde;border-radius:6px;overflow:auto}
#side{width:300px;background:#fff;border:1px solid #dde;border-radius:6px;padding:12px;font-size:13px}
.stage rect{fill:#fff;stroke:#6b7a99;stroke-width:1.5;rx:8} .stage text{font-size:12px}
.stage.running rect{stroke:#2f8f4e} .stage.paused rect{stroke:#c98a00;stroke-dasharray:4 3}
.stage.restarting rect,.stage.given_up rect{stroke:#c0392b;stroke-width:2.5} .stage.finished rect{stroke:#8894ad;fill:#f0f2f6}
.stage{cursor:pointer} .name{font-weight:600;font-size:13px} .dead{fill:#c0392b}
path.edge{fill:none;stroke:#9aa6bf;stroke-width:1.5;marker-end:url(#arrow)} .elabel{font-size:11px;fill:#66708a}
table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:3px 4px;border-bottom:1px solid #eef}
.err{color:#c0392b;white-space:pre-wrap;word-break:break-word}
</style></head><body>
<header><b id="app">troupe</b><div id="status"></div></header>
<main><div id="graph"><svg id="svg" width="900" height="400"></svg></div>
<div id="side"><div id="detail">Click a stage for its workers.</div></div></main>
<script>
"use strict";
const W=212,H=86,GX=64,GY=28;let layout=null,selected=null,last=null;
const esc=s=>String(s).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const num=n=>n>=1e6?(n/1e6).toFixed(1)+"M":n>=1e4?(n/1e3).toFixed(1)+"k":String(Math.round(n));
function place(stages){
  const byEdge={};stages.forEach(s=>Object.values(s.outputs).forEach(e=>(byEdge[e]=byEdge[e]||[]).push(s.name)));
  const depth={},pos={};const d=s=>{if(depth[s.name]!==undefined)return depth[s.name];depth[s.name]=0;
    let m=0;s.inputs.forEach(e=>(byEdge[e]||[]).forEach(p=>{const ps=stages.find(x=>x.name===p);if(ps)m=Math.max(m,d(ps)+1);}));return depth[s.name]=m;};
  stages.forEach(d);const rows={};
  stages.forEach(s=>{const c=depth[s.name];rows[c]=rows[c]||0;pos[s.name]={x:20+c*(W+GX),y:20+rows[c]*(H+GY)};rows[c]++;});
  const edges=[];stages.forEach(s=>s.inputs.forEach(e=>(byEdge[e]||[]).forEach(p=>edges.push({from:p,to:s.name,edge:e}))));
  const cols=Math.max(...Object.values(depth))+1,maxRows=Math.max(...Object.values(rows));
  return {pos,edges,width:40+cols*(W+GX),height:40+maxRows*(H+GY)};
}
function draw(ps){
  if(!layout)layout=place(ps.stages);const svg=document.getElementById("svg");
  svg.setAttribute("width",layout.width);svg.setAttribute("height",layout.height);
  let out='<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#9aa6bf"/></marker></defs>';
  layout.edges.forEach(e=>{const a=layout.pos[e.from],b=layout.pos[e.to];const x1=a.x+W,y1=a.y+H/2,x2=b.x,y2=b.y+H/2,mx=(x1+x2)/2;
    out+=`<path class="edge" d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}"/><text class="elabel" x="${mx-20}" y="${(y1+y2)/2-4}">${esc(e.edge)}</text>`;});
  ps.stages.forEach(s=>{const p=layout.pos[s.name];
    out+=`<g class="stage ${esc(s.state)}" data-stage="${esc(s.name)}" transform="translate(${p.x},${p.y})"><rect width="${W}" height="${H}"/>`+
      `<text class="name" x="10" y="18">${esc(s.name)}</text><text x="10" y="34">${esc(s.type)} · ${s.workers} worker${s.workers>1?"s":""} · ${esc(s.state)}</text>`+
      `<text x="10" y="50">in ${num(s.records_in)} (${num(s.in_per_s)}/s) · out ${num(s.records_out)}</text>`+
      `<text x="10" y="66">lag ${num(s.lag)}${s.oldest_unconsumed_ms!=null?" ("+(s.oldest_unconsumed_ms/1000).toFixed(0)+"s)":""} · restarts ${s.restarts}</text>`+
      `<text x="10" y="80" class="${s.dead_letters?"dead":""}">dead letters ${num(s.dead_letters)}</text></g>`;});
  svg.innerHTML=out;
  svg.querySelectorAll(".stage").forEach(g=>g.onclick=()=>{selected=g.dataset.stage;detail();});
}
function detail(){
  if(!last||!selected)return;const s=last.stages.find(x=>x.name===selected);
  const sup=last.tree.children.find(c=>c.name==="stage "+selected);if(!s||!sup)return;
  let h=`<h3>${esc(s.name)}</h3><p>${esc(s.type)}, ${esc(s.state)}; reads ${esc(s.inputs.join(", ")||"nothing")}</p>`;
  h+="<table><tr><th>actor</th><th>state</th><th>in</th><th>out</th><th>p99</th><th>restarts</th></tr>";
  sup.children.forEach(w=>h+=`<tr><td>${esc(w.name)}</td><td>${esc(w.state)}</td><td>${num(w.records_in)}</td><td>${num(w.records_out)}</td><td>${(w.step_p99_us/1000).toFixed(1)} ms</td><td>${w.restarts}</td></tr>`);
  h+="</table>";if(s.last_error)h+=`<p>last error:</p><div class="err">${esc(s.last_error)}</div>`;
  document.getElementById("detail").innerHTML=h;
}
async function tick(){
  try{const [ps,st]=await Promise.all([fetch("v1/ps").then(r=>r.json()),fetch("v1/status").then(r=>r.json())]);
    last=ps;document.getElementById("app").textContent="troupe · "+st.app;
    document.getElementById("status").innerHTML=`<span>${esc(st.node)}</span><span>up ${Math.round(st.uptime_s)} s</span><span>${esc(st.durability)}</span>`+
      `<span>${num(st.commits_per_s)} commits/s</span><span>${num(st.fsyncs_per_s)} fsyncs/s</span><span>map ${(100*st.map_used_bytes/st.map_size_bytes).toFixed(1)}%</span>`;
    draw(ps);detail();
  }catch(e){document.getElementById("status").textContent="node unreachable: "+e;}
}
tick();setInterval(tick,1000);
</script></body></html>
)html";

} // namespace

const std::string& dashboard_html() {
  static const std::string html = page;
  return html;
}

} // namespace troupe
