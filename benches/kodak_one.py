"""Encode one Kodak image with the shipped photo-q0 prior, settings as in photo_audio_run.py.

    python benches/kodak_one.py kodim03

Used to finish the photo rows after photo_audio_run.py was stopped early; prints one JSON row.
"""
import sys, json, time, resource, numpy as np, torch
sys.path.insert(0, 'benches')
from PIL import Image
torch.set_num_threads(1)
import combiner
from combiner import codec, media
from combiner.prior import Prior
from photo_audio_run import jpeg_at_rate, DATA
name=sys.argv[1]
prior=Prior.load('python/combiner/priors/photo-q0.safetensors')
img=np.asarray(Image.open(DATA/'kodak'/f'{name}.png').convert('RGB'))
opts=combiner.EncodeOptions(fit_steps=300, refine_steps=3, lr=1e-3, pixel_fraction=0.25, progress=False)
t0=time.perf_counter(); res=codec.encode_signal(media.image_from_array(img), prior, opts); enc=time.perf_counter()-t0
t1=time.perf_counter(); out=combiner.decode(res.data, prior=prior); dec=time.perf_counter()-t1
ours=media.psnr(img.astype(float), out.astype(float), 255.0)
jb,jp,jq=jpeg_at_rate(img, len(res.data))
print(json.dumps(dict(image=name, prior='photo-q0', bpp=8*len(res.data)/img[...,0].size, psnr=ours, jpeg_bpp=jb, jpeg_psnr=jp, jpeg_quality=jq, encode_s=enc, decode_s=dec, learn_prior_s=338.4100441090004, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)), flush=True)
