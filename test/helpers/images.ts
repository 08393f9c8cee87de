import sharp from 'sharp';

/** A small photo-like test image: a gradient with a few dark specks (dust, noise, a mark). */
export async function testPhoto(format: 'jpeg' | 'png', width = 60, height = 40): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const speck = (x * 7 + y * 13) % 29 === 0;
      pixels[i] = speck ? 10 : 80 + Math.round((x / width) * 150);
      pixels[i + 1] = speck ? 10 : 60 + Math.round((y / height) * 150);
      pixels[i + 2] = speck ? 10 : 140;
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  return (format === 'jpeg' ? image.jpeg({ quality: 85 }) : image.png()).toBuffer();
}
