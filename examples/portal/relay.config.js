// Relay Compiler: the committed schema of the API, plain JavaScript, ES module artifacts.
module.exports = {
  src: "./src",
  schema: "../../schema.graphql",
  language: "javascript",
  eagerEsModules: true,
  excludes: ["**/node_modules/**", "**/__generated__/**"],
};
