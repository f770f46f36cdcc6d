// genbench review page (served as /static/review.js; the CSP allows no inline script)
'use strict';
const BATCH = 12;
let items = [], cur = 0, start = 0, total = 0;
function el(tag, cls, text){const e=document.createElement(tag); if(cls) e.className=cls;
  if(text!==undefined) e.textContent=text; return e;}
async function state(){const r=await fetch('/api/state'); return r.json();}
function showProgress(s){total=s.total; const d=s.counts.accept+s.counts.reject+s.counts.skip;
  document.getElementById('progress').textContent=`${s.reviewer}: ${d} / ${s.total} decided `+
   `(${s.counts.accept} accepted, ${s.counts.reject} rejected, ${s.counts.skip} skipped)`;
  document.getElementById('fill').style.width=(s.total? 100*d/s.total:100)+'%';}
async function load(s){start=Math.max(0,s); const r=await fetch(`/api/batch?start=${start}&n=${BATCH}`);
  items=(await r.json()).items; render();}
function render(){const g=document.getElementById('grid'); g.replaceChildren();
  items.forEach((it,i)=>{const c=el('div','card'+(i===cur?' current':'')+(it.decision?' '+it.decision:''));
    c.id='item-'+it.position; c.dataset.itemId=it.item_id; c.dataset.decision=it.decision||'';
    const img=el('img'); img.src=it.image; img.alt=it.item_id; c.appendChild(img);
    c.appendChild(el('div','label',`#${it.position+1} · ${it.label_name} (${it.label_id})`));
    c.appendChild(el('div','caption',it.caption));
    if(it.flags) c.appendChild(el('div','flags','flags: '+(it.flag_reasons||it.flags)));
    if(it.zero_shot_top1) c.appendChild(el('div','flags zs','zero-shot top-1: '+it.zero_shot_top1));
    c.appendChild(el('div','decision',it.decision||''));
    c.addEventListener('click',()=>{cur=i; render();}); g.appendChild(c);});
  const c=document.querySelector('.card.current'); if(c) c.scrollIntoView({block:'nearest'});}
async function move(delta){let i=cur+delta;
  if(i>=items.length){ if(start+items.length>=total){return;} cur=0; await load(start+BATCH); return;}
  if(i<0){ if(start===0){return;} await load(start-BATCH); cur=items.length-1; render(); return;}
  cur=i; render();}
async function decide(d){const it=items[cur]; if(!it) return;
  const r=await fetch('/api/decide',{method:'POST',headers:{'Content-Type':'application/json'},
    body:JSON.stringify({item_id:it.item_id,decision:d})});
  if(!r.ok){alert('not saved: '+(await r.text())); return;}
  it.decision=d; const s=await r.json(); showProgress(s);
  document.getElementById('done').hidden = s.first_undecided < s.total;
  if(cur+1<items.length){cur++; render();} else if(start+items.length<total){cur=0; await load(start+BATCH);}
  else render();}
// key actions run strictly one after another (a fast typist never decides for the wrong card)
let chain = Promise.resolve();
function enqueue(f){chain = chain.then(f).catch(err=>alert('error: '+err)); }
document.addEventListener('keydown',e=>{if(e.ctrlKey||e.metaKey||e.altKey) return; const k=e.key.toLowerCase();
  if(k==='a') enqueue(()=>decide('accept')); else if(k==='r') enqueue(()=>decide('reject'));
  else if(k==='s') enqueue(()=>decide('skip'));
  else if(k==='j'||k==='arrowright') enqueue(()=>move(1)); else if(k==='k'||k==='arrowleft') enqueue(()=>move(-1));
  else return;
  e.preventDefault();});
(async()=>{const s=await state(); showProgress(s);
  const f=Math.min(s.first_undecided, Math.max(s.total-1,0)); await load(f-(f%BATCH)); cur=f%BATCH; render();
  document.getElementById('done').hidden = s.first_undecided < s.total; window.reviewReady=true;})();
